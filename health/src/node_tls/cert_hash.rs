//! The `tls-server-end-point` channel-binding value (RFC 5929): a hash
//! of the server's certificate, with the hash of the certificate's own
//! signature algorithm (SHA-256 when that is MD5 or SHA-1). PostgreSQL
//! binds SCRAM-SHA-256-PLUS to it; so do pgrelay's two sides.
//!
//! Only the outer structure of the certificate is read (DER: a SEQUENCE
//! of the signed part, the signature algorithm, the signature), with every
//! length checked: the certificate may come from a node nobody verified.

use ring::digest;

/// OIDs (DER content bytes) of signature algorithms and their hash.
const ALGORITHMS: &[(&[u8], &digest::Algorithm)] = &[
    // md5WithRSAEncryption, sha1WithRSAEncryption: SHA-256 per RFC 5929.
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04],
        &digest::SHA256,
    ),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05],
        &digest::SHA256,
    ),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
        &digest::SHA256,
    ),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
        &digest::SHA384,
    ),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
        &digest::SHA512,
    ),
    // ecdsa-with-SHA1, -SHA256, -SHA384, -SHA512.
    (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01], &digest::SHA256),
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],
        &digest::SHA256,
    ),
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
        &digest::SHA384,
    ),
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
        &digest::SHA512,
    ),
];

const SEQUENCE: u8 = 0x30;
const OBJECT_IDENTIFIER: u8 = 0x06;

/// The channel-binding data for a certificate in DER, or `None` when its
/// signature algorithm has no defined hash here (Ed25519, RSA-PSS) or it
/// is not a certificate: then SCRAM-SHA-256-PLUS is not used.
pub fn end_point_hash(cert: &[u8]) -> Option<Vec<u8>> {
    let (certificate, _) = element(cert, SEQUENCE)?;
    let (_signed, rest) = element(certificate, SEQUENCE)?;
    let (algorithm, _) = element(rest, SEQUENCE)?;
    let (oid, _) = element(algorithm, OBJECT_IDENTIFIER)?;
    let (_, hash) = ALGORITHMS.iter().find(|(known, _)| *known == oid)?;
    Some(digest::digest(hash, cert).as_ref().to_vec())
}

/// The content of the DER element at the start of `input` if it has tag
/// `tag`, and what follows the element.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, rest) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate skeleton: SEQUENCE { SEQUENCE {}, SEQUENCE { OID }, BIT STRING }.
    fn skeleton(oid: &[u8]) -> Vec<u8> {
        let mut algorithm = vec![OBJECT_IDENTIFIER, oid.len() as u8];
        algorithm.extend_from_slice(oid);
        let mut body = vec![SEQUENCE, 0];
        body.extend_from_slice(&[SEQUENCE, algorithm.len() as u8]);
        body.extend_from_slice(&algorithm);
        body.extend_from_slice(&[0x03, 1, 0]);
        let mut cert = vec![SEQUENCE, body.len() as u8];
        cert.extend_from_slice(&body);
        cert
    }

    #[test]
    fn the_hash_follows_the_signature_algorithm() {
        let ecdsa_sha256 = skeleton(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
        let hash = end_point_hash(&ecdsa_sha256).expect("known");
        assert_eq!(
            hash,
            digest::digest(&digest::SHA256, &ecdsa_sha256).as_ref()
        );
        let rsa_sha384 = skeleton(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c]);
        assert_eq!(end_point_hash(&rsa_sha384).map(|h| h.len()), Some(48));
        let ed25519 = skeleton(&[0x2b, 0x65, 0x70]);
        assert_eq!(end_point_hash(&ed25519), None);
    }

    #[test]
    fn garbage_is_no_certificate() {
        for input in [
            &b""[..],
            &[0x30],
            &[0x30, 0x85, 0, 0, 0, 0, 1],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x02, 0x30, 0x05],
            &[0x31, 0x00],
        ] {
            assert_eq!(end_point_hash(input), None, "{input:?}");
        }
    }
}
