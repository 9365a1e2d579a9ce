//! A secret as PostgreSQL stores it (`pg_authid.rolpassword`).

use crate::scram::ScramSecret;

/// The forms pgrelay can check a client against and log in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredSecret {
    /// `SCRAM-SHA-256$…`: checked by SCRAM; logs in with the ClientKey
    /// the client's proof reveals.
    Scram(ScramSecret),
    /// `md5` and 32 hex digits, `md5(password || user)`: checked by md5;
    /// logs in by md5, which needs nothing more.
    Md5(String),
}

impl StoredSecret {
    /// `None` for what is neither (no password, or a form from before
    /// PostgreSQL 10 that stored passwords in clear).
    pub fn parse(text: &str) -> Option<StoredSecret> {
        if let Some(secret) = ScramSecret::parse(text) {
            return Some(StoredSecret::Scram(secret));
        }
        let hex = text.strip_prefix("md5")?;
        (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| StoredSecret::Md5(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_postgresql_stores() {
        let scram = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$\
                     WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:\
                     wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
        assert!(matches!(
            StoredSecret::parse(scram),
            Some(StoredSecret::Scram(_))
        ));
        let md5 = "md5c4ca4238a0b923820dcc509a6f75849b";
        assert_eq!(
            StoredSecret::parse(md5),
            Some(StoredSecret::Md5(md5.into()))
        );
        for other in [
            "",
            "secret",
            "md5short",
            "md5zzzz4238a0b923820dcc509a6f75849b",
        ] {
            assert_eq!(StoredSecret::parse(other), None, "{other}");
        }
    }
}
