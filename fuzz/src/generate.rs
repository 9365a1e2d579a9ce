//! Inputs built from the protocol's grammar rather than mutated: message
//! sequences whose frames are well formed (names that match, batches
//! ended by Sync, answers in order), so the inspectors' deeper paths
//! run; the mutator then bends them.

use rand::Rng;
use rand::rngs::SmallRng;

use crate::targets::frame;

const STATEMENTS: &[&str] = &[
    "SELECT 1",
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
    "SELECT my_fn(1), s.other(2)",
    "SELECT * FROM t FOR UPDATE",
    "INSERT INTO t VALUES ($1) RETURNING id",
    "UPDATE t SET a = 1",
    "BEGIN",
    "BEGIN READ ONLY",
    "COMMIT",
    "ROLLBACK",
    "SET search_path = a",
    "SET LOCAL work_mem = '1MB'",
    "RESET ALL",
    "DISCARD ALL",
    "PREPARE p AS SELECT 1",
    "EXECUTE p",
    "DEALLOCATE p",
    "LISTEN ch",
    "CREATE TEMP TABLE tt (a int)",
    "SELECT pg_advisory_lock(1)",
    "SELECT set_config('a.b', 'c', false)",
    "COPY t FROM STDIN",
    "COPY t TO STDOUT",
    "SET pgrelay.consistency = 'eventual'",
    "SHOW pgrelay.route",
    "SET pgrelay.min_lsn = '0/3000060'",
    "/* pgrelay:replica */ SELECT 2",
    "/* pgrelay:max_lag=200ms */ SELECT 3",
    "SELECT 1; SELECT 2",
    "EXPLAIN ANALYZE DELETE FROM t",
    "not sql at all",
];
const NAMES: &[&str] = &["", "s1", "s2", "p", "pgrelay.function_lookup"];

fn pick<'a>(rng: &mut SmallRng, list: &[&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

fn cstr(body: &mut Vec<u8>, text: &str) {
    body.extend_from_slice(text.as_bytes());
    body.push(0);
}

/// A sequence of frontend messages after a chunking byte.
pub fn client_messages(rng: &mut SmallRng) -> Vec<u8> {
    let mut out = vec![rng.random_range(0..16)];
    for _ in 0..rng.random_range(1..16) {
        let mut body = Vec::new();
        let tag = match rng.random_range(0..14) {
            0..=2 => {
                let sql = if rng.random_ratio(1, 4) {
                    format!("{}; {}", pick(rng, STATEMENTS), pick(rng, STATEMENTS))
                } else {
                    pick(rng, STATEMENTS).to_owned()
                };
                cstr(&mut body, &sql);
                b'Q'
            }
            3 | 4 => {
                cstr(&mut body, pick(rng, NAMES));
                cstr(&mut body, pick(rng, STATEMENTS));
                body.extend_from_slice(&[0, 0]);
                b'P'
            }
            5 | 6 => {
                cstr(&mut body, pick(rng, NAMES));
                cstr(&mut body, pick(rng, NAMES));
                body.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, b'1', 0, 0]);
                b'B'
            }
            7 => {
                body.push(if rng.random() { b'S' } else { b'P' });
                cstr(&mut body, pick(rng, NAMES));
                b'D'
            }
            8 => {
                cstr(&mut body, pick(rng, NAMES));
                body.extend_from_slice(&0i32.to_be_bytes());
                b'E'
            }
            9 => {
                body.push(if rng.random() { b'S' } else { b'P' });
                cstr(&mut body, pick(rng, NAMES));
                b'C'
            }
            10 | 11 => b'S',
            12 => b'H',
            _ => {
                let tags = [b'd', b'c', b'f', b'F', b'X'];
                let tag = tags[rng.random_range(0..tags.len())];
                body.extend((0..rng.random_range(0..12)).map(|_| rng.random::<u8>()));
                tag
            }
        };
        out.extend(frame(tag, &body));
    }
    out
}

/// A scene byte, a chunking byte, then backend messages.
pub fn server_messages(rng: &mut SmallRng) -> Vec<u8> {
    let mut out = vec![rng.random(), rng.random_range(0..16)];
    for _ in 0..rng.random_range(1..16) {
        let mut body = Vec::new();
        let tag = match rng.random_range(0..12) {
            0 | 1 => {
                body.push([b'I', b'T', b'E'][rng.random_range(0..3)]);
                b'Z'
            }
            2 => {
                let severity = if rng.random_ratio(1, 3) {
                    "FATAL"
                } else {
                    "ERROR"
                };
                body.push(b'S');
                cstr(&mut body, severity);
                body.push(b'C');
                cstr(
                    &mut body,
                    ["25006", "57P01", "40001", "42P01"][rng.random_range(0..4)],
                );
                body.push(b'M');
                cstr(&mut body, "message");
                body.push(0);
                b'E'
            }
            3 => {
                cstr(&mut body, "SELECT 1");
                b'C'
            }
            4 | 5 => {
                body.extend_from_slice(&1i16.to_be_bytes());
                let value = ["0/3000060", "1", "zz"][rng.random_range(0..3)];
                body.extend_from_slice(&(value.len() as i32).to_be_bytes());
                body.extend_from_slice(value.as_bytes());
                b'D'
            }
            6 => {
                body.extend_from_slice(&1i16.to_be_bytes());
                cstr(&mut body, "lsn");
                body.extend_from_slice(&[0; 18]);
                b'T'
            }
            7 => {
                let pid: i32 = if rng.random() { 4242 } else { rng.random() };
                body.extend_from_slice(&pid.to_be_bytes());
                cstr(&mut body, "channel");
                cstr(&mut body, "payload");
                b'A'
            }
            8 => {
                body.extend_from_slice(&[0, 0, 0]);
                [b'G', b'H', b'W'][rng.random_range(0..3)]
            }
            9 => [b'1', b'2', b'3', b'n', b's', b'I'][rng.random_range(0..6)],
            10 => {
                cstr(&mut body, "TimeZone");
                cstr(&mut body, "UTC");
                b'S'
            }
            _ => {
                body.push(b'S');
                cstr(&mut body, "NOTICE");
                body.push(0);
                b'N'
            }
        };
        out.extend(frame(tag, &body));
    }
    out
}

/// SQL put together from statements and dictionary words.
pub fn sql(rng: &mut SmallRng) -> Vec<u8> {
    let mut text = String::new();
    for _ in 0..rng.random_range(1..4) {
        if !text.is_empty() {
            text.push_str(if rng.random() { "; " } else { " " });
        }
        text.push_str(pick(rng, STATEMENTS));
    }
    text.into_bytes()
}
