//! What is fuzzed: each parser of bytes a client or a node controls.

use pgrelay_router::Classifier;

/// The shape inputs take, for the mutator's structure-aware operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Opaque bytes.
    Bytes,
    /// A stream of tagged protocol frames after a leading byte or two.
    Frames,
    /// Text (SQL, SCRAM attributes, conninfo).
    Text,
}

pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
    pub shape: Shape,
    /// Where mutation starts.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Tokens the mutator splices in.
    pub dictionary: &'static [&'static [u8]],
    /// Builds whole inputs from the grammar (now and then, in place of a
    /// mutation).
    pub generate: Option<fn(&mut rand::rngs::SmallRng) -> Vec<u8>>,
}

pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "startup",
            run: pgrelay::fuzzing::startup,
            shape: Shape::Bytes,
            seeds: startup_seeds,
            dictionary: &[b"user\0", b"database\0", b"options\0", b"_pq_.x\0", b"\0\0"],
            generate: None,
        },
        Target {
            name: "login_messages",
            run: pgrelay::fuzzing::login_messages,
            shape: Shape::Frames,
            seeds: || {
                vec![
                    frame(b'p', b"secret\0"),
                    frame(b'p', b"SCRAM-SHA-256\0\0\0\0\x03abc"),
                ]
            },
            dictionary: FRONTEND_TAGS,
            generate: None,
        },
        Target {
            name: "scram_server",
            run: pgrelay::fuzzing::scram_server,
            shape: Shape::Text,
            seeds: scram_server_seeds,
            dictionary: SCRAM_WORDS,
            generate: None,
        },
        Target {
            name: "scram_client",
            run: pgrelay::fuzzing::scram_client,
            shape: Shape::Text,
            seeds: || {
                vec![b"\0xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096\xffv=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()]
            },
            dictionary: SCRAM_WORDS,
            generate: None,
        },
        Target {
            name: "secrets",
            run: pgrelay::fuzzing::secrets,
            shape: Shape::Text,
            seeds: || {
                vec![
                    b"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=".to_vec(),
                    b"md5c4ca4238a0b923820dcc509a6f75849b".to_vec(),
                    b"user=rep password='a b\\'c' application_name={name}".to_vec(),
                    b"postgresql://u:p@h:5432/db?password=x&sslmode=require".to_vec(),
                    b"\x30\x0c\x30\x00\x30\x05\x06\x03\x2b\x65\x70\x03\x01\x00".to_vec(),
                ]
            },
            dictionary: &[
                b"SCRAM-SHA-256$",
                b"md5",
                b"password=",
                b"'",
                b"\\",
                b"$",
                b":",
                b"\x30\x82",
            ],
            generate: None,
        },
        Target {
            name: "auth_guard",
            run: pgrelay::fuzzing::auth_guard,
            shape: Shape::Frames,
            seeds: || {
                let mut s = vec![3u8];
                s.extend(frame(b'R', b"\0\0\0\x0aSCRAM-SHA-256\0\0"));
                s.extend(frame(b'R', b"\0\0\0\x03"));
                vec![s]
            },
            dictionary: BACKEND_TAGS,
            generate: None,
        },
        Target {
            name: "classify",
            run: classify,
            shape: Shape::Text,
            seeds: classify_seeds,
            dictionary: SQL_WORDS,
            generate: Some(crate::generate::sql),
        },
        Target {
            name: "client_stream",
            run: pgrelay::fuzzing::client_stream,
            shape: Shape::Frames,
            seeds: client_stream_seeds,
            dictionary: FRONTEND_TAGS,
            generate: Some(crate::generate::client_messages),
        },
        Target {
            name: "server_stream",
            run: pgrelay::fuzzing::server_stream,
            shape: Shape::Frames,
            seeds: server_stream_seeds,
            dictionary: BACKEND_TAGS,
            generate: Some(crate::generate::server_messages),
        },
        Target {
            name: "traceparent",
            run: pgrelay::fuzzing::traceparent,
            shape: Shape::Text,
            seeds: traceparent_seeds,
            dictionary: TRACEPARENT_WORDS,
            generate: None,
        },
    ]
}

/// sqlcommenter comments: one among other keys, one after a quoted quote.
fn traceparent_seeds() -> Vec<Vec<u8>> {
    vec![
        b"SELECT 1 /*action='a%20b',traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/;".to_vec(),
        b"UPDATE t SET a = 'x''y' /* traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' */".to_vec(),
    ]
}

const TRACEPARENT_WORDS: &[&[u8]] = &[
    b"/*",
    b"*/",
    b"traceparent=",
    b"'",
    b"%2D",
    b"%",
    b"-",
    b"--",
    b"\n",
    b",",
    b"00-",
];

/// The classifier with a small parse limit (so both paths run), its
/// verdict's effective access, the fingerprint on its own, and shapes
/// agreeing with the scan for the text with other literal values.
fn classify(data: &[u8]) {
    let mut classifier = Classifier::new(64);
    classifier.set_max_parse_size(2048);
    let statement = classifier.classify(data);
    let _ = classifier.effective_access("db", &statement);
    let _ = classifier.unresolved_functions("db", &statement);
    let _ = pgrelay_router::fingerprint_bytes(data);
    pgrelay_router::check_shapes(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pgrelay_router::leading_hint(text);
    }
}

/// A frame: tag, length, body.
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![tag];
    f.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn startup_seeds() -> Vec<Vec<u8>> {
    let packet = |code: u32, body: &[u8]| {
        let mut p = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        p.extend_from_slice(&code.to_be_bytes());
        p.extend_from_slice(body);
        p
    };
    vec![
        packet(3 << 16, b"user\0app\0database\0db\0\0"),
        packet(3 << 16 | 2, b"user\0app\0_pq_.x\0y\0\0"),
        packet(80_877_103, b""),
        packet(80_877_102, &[0, 0, 1, 0, 0, 0, 0, 7]),
    ]
}

fn scram_server_seeds() -> Vec<Vec<u8>> {
    vec![
        b"\0n,,n=,r=abcdef\xffc=biws,r=abcdefXYZ,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
            .to_vec(),
        b"\x03p=tls-server-end-point,,n=user,r=abc\xffc=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=abc,p=x"
            .to_vec(),
        b"\x02y,,n=,r=abc,ext=1\xff".to_vec(),
    ]
}

fn classify_seeds() -> Vec<Vec<u8>> {
    [
        "SELECT abalance FROM pgbench_accounts WHERE aid = 42",
        "/* pgrelay:replica */ SELECT my_fn(1), s.g(2) FROM t FOR UPDATE",
        "BEGIN; INSERT INTO t VALUES (1) RETURNING *; COMMIT",
        "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
        "SET pgrelay.consistency = 'eventual'",
        "PREPARE p AS SELECT set_config('a.b', 'c', false); EXECUTE p",
        "SELECT $1::text COLLATE \"C\", E'\\\\', $$dollar$$, U&'\\0041'",
        "EXPLAIN (ANALYZE 0) DELETE FROM t",
        "COPY t FROM STDIN WITH (FORMAT csv)",
        "DO $$BEGIN PERFORM pg_advisory_lock(1); END$$",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

fn client_stream_seeds() -> Vec<Vec<u8>> {
    let mut simple = vec![0u8];
    simple.extend(frame(b'Q', b"SELECT 1\0"));
    simple.extend(frame(b'Q', b"BEGIN; SELECT my_fn(1); COMMIT\0"));
    simple.extend(frame(b'Q', b"SET search_path = a\0"));
    simple.extend(frame(b'Q', b"SHOW pgrelay.route\0"));
    let mut extended = vec![7u8];
    extended.extend(frame(b'P', b"s1\0SELECT $1::int\0\0\x01\0\0\0\x17"));
    extended.extend(frame(b'B', b"\0s1\0\0\0\0\x01\0\0\0\x011\0\0"));
    extended.extend(frame(b'D', b"P\0"));
    extended.extend(frame(b'E', b"\0\0\0\0\0"));
    extended.extend(frame(b'C', b"Ss1\0"));
    extended.extend(frame(b'S', b""));
    extended.extend(frame(b'H', b""));
    let mut copy = vec![1u8];
    copy.extend(frame(b'Q', b"COPY t FROM STDIN\0"));
    copy.extend(frame(b'd', b"1\t2\n"));
    copy.extend(frame(b'c', b""));
    copy.extend(frame(b'F', b"\0\0\x10\x01\0\0\0\0\0\0\0\0"));
    copy.extend(frame(b'X', b""));
    vec![simple, extended, copy]
}

fn server_stream_seeds() -> Vec<Vec<u8>> {
    let mut answers = vec![0x13u8, 5];
    answers.extend(frame(b'1', b""));
    answers.extend(frame(b'2', b""));
    answers.extend(frame(
        b'T',
        b"\0\x01a\0\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0",
    ));
    answers.extend(frame(b'D', b"\0\x01\0\0\0\x090/3000060"));
    answers.extend(frame(b'C', b"SELECT 1\0"));
    answers.extend(frame(b'Z', b"T"));
    answers.extend(frame(b'E', b"SERROR\0C25006\0Mread-only\0\0"));
    answers.extend(frame(b'Z', b"E"));
    answers.extend(frame(b'A', b"\0\0\x10\x92c\0p\0"));
    answers.extend(frame(b'G', b"\0\0\0"));
    answers.extend(frame(b'E', b"SFATAL\0C57P01\0Mbye\0\0"));
    vec![answers]
}

const FRONTEND_TAGS: &[&[u8]] = &[
    b"Q",
    b"P",
    b"B",
    b"D",
    b"E",
    b"C",
    b"S",
    b"H",
    b"F",
    b"X",
    b"d",
    b"c",
    b"f",
    b"p",
    b"SELECT ",
    b"SET ",
    b"BEGIN",
    b"COMMIT",
    b"pgrelay.",
    b"\0",
];
const BACKEND_TAGS: &[&[u8]] = &[
    b"Z",
    b"E",
    b"N",
    b"C",
    b"D",
    b"T",
    b"A",
    b"G",
    b"H",
    b"W",
    b"1",
    b"2",
    b"3",
    b"R",
    b"S",
    b"K",
    b"\0\0\0\x03",
    b"\0\0\0\0",
    b"SFATAL\0",
    b"C25006\0",
];
const SCRAM_WORDS: &[&[u8]] = &[
    b"n,,",
    b"y,,",
    b"p=tls-server-end-point,,",
    b"n=",
    b"r=",
    b"c=",
    b"p=",
    b"s=",
    b"i=",
    b"v=",
    b"e=",
    b"m=",
    b"a=",
    b",",
    b"=",
    b"biws",
    b"\xff",
];
const SQL_WORDS: &[&[u8]] = &[
    b"SELECT ",
    b"INSERT ",
    b"UPDATE ",
    b"DELETE ",
    b"WITH ",
    b"FOR UPDATE",
    b"SET ",
    b"RESET ",
    b"PREPARE ",
    b"EXECUTE ",
    b"BEGIN",
    b"COMMIT",
    b"ROLLBACK",
    b"COPY ",
    b"EXPLAIN ",
    b"ANALYZE ",
    b"LISTEN ",
    b"DO $$",
    b"$$",
    b"'",
    b"\"",
    b"E'",
    b"--",
    b"/*",
    b"*/",
    b";",
    b"(",
    b")",
    b"f(",
    b"pg_advisory_lock(",
    b"set_config(",
    b"nextval(",
    b"/* pgrelay:",
    b"primary */",
    b"replica */",
    b"max_lag=",
    b"::",
    b"$1",
    b"TEMP ",
    b"INTO ",
];
