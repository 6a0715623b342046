#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use proptest::prelude::*;

const AAD: &[u8] = b"chat_providers.api_key:6f1c3a52-1111-4222-8333-944455556666";
const KEY_A: [u8; 32] = [0x11; 32];
const KEY_B: [u8; 32] = [0x22; 32];

fn key(bytes: [u8; 32]) -> SecretKey {
    SecretKey::from_bytes(bytes)
}

fn ring(id: &str, bytes: [u8; 32]) -> Keyring {
    Keyring::new(id, key(bytes)).unwrap()
}

fn kind<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
    r.unwrap_err().kind()
}

/// Decodes the payload of a sealed text, applies `f`, and re-encodes it.
fn with_payload(sealed: &str, f: impl FnOnce(&mut Vec<u8>)) -> String {
    let (head, payload) = sealed.rsplit_once(':').unwrap();
    let mut raw = STANDARD.decode(payload).unwrap();
    f(&mut raw);
    format!("{head}:{}", STANDARD.encode(raw))
}

#[test]
fn round_trip() {
    let k = ring("k1", KEY_A);
    for plaintext in [&b""[..], b"x", b"sk-ant-api03-abcdef", &[0u8, 255, 7][..]] {
        let sealed = k.encrypt(plaintext, AAD).unwrap();
        assert_eq!(&k.decrypt(&sealed, AAD).unwrap()[..], plaintext);
    }
    let sealed = k.encrypt("clé-ünïcode".as_bytes(), AAD).unwrap();
    assert_eq!(
        k.decrypt_secret(&sealed, AAD).unwrap().expose(),
        "clé-ünïcode"
    );
}

#[test]
fn format_is_versioned_and_self_describing() {
    let k = ring("prod-2025.06_a", KEY_A);
    let sealed = k.encrypt(b"secret", AAD).unwrap();
    let fields: Vec<&str> = sealed.split(':').collect();
    assert_eq!(fields.len(), 4);
    assert_eq!(fields[0], "v1");
    assert_eq!(fields[1], "prod-2025.06_a");
    assert_eq!(Some(fields[2]), k.key_check("prod-2025.06_a"));
    assert_eq!(fields[2], key(KEY_A).check());
    let raw = STANDARD.decode(fields[3]).unwrap();
    assert_eq!(raw.len(), NONCE_LEN + b"secret".len() + TAG_LEN);
    assert_eq!(sealed_key_id(&sealed).unwrap(), "prod-2025.06_a");
}

#[test]
fn each_encryption_uses_a_fresh_nonce() {
    let k = ring("k1", KEY_A);
    let a = k.encrypt(b"same", AAD).unwrap();
    let b = k.encrypt(b"same", AAD).unwrap();
    assert_ne!(a, b);
    let nonce =
        |s: &str| STANDARD.decode(s.rsplit_once(':').unwrap().1).unwrap()[..NONCE_LEN].to_vec();
    assert_ne!(nonce(&a), nonce(&b));
}

#[test]
fn key_checks_differ_per_key_and_are_stable() {
    assert_eq!(key(KEY_A).check(), key(KEY_A).check());
    assert_ne!(key(KEY_A).check(), key(KEY_B).check());
    assert!(valid_key_check(&key(KEY_A).check()));
}

#[test]
fn wrong_aad_fails() {
    let k = ring("k1", KEY_A);
    let sealed = k.encrypt(b"secret", AAD).unwrap();
    let err = k
        .decrypt(&sealed, b"chat_providers.api_key:another-row")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DecryptionFailed);
    assert_eq!(err.key_id(), Some("k1"));
    assert_eq!(kind(k.decrypt(&sealed, b"")), ErrorKind::DecryptionFailed);
}

#[test]
fn tampering_anywhere_fails() {
    let k = ring("k1", KEY_A);
    let sealed = k.encrypt(b"secret value", AAD).unwrap();
    let len = NONCE_LEN + b"secret value".len() + TAG_LEN;
    // Nonce, ciphertext and tag bytes.
    for i in [
        0,
        NONCE_LEN - 1,
        NONCE_LEN,
        NONCE_LEN + 5,
        len - TAG_LEN,
        len - 1,
    ] {
        let tampered = with_payload(&sealed, |raw| raw[i] ^= 0x01);
        assert_eq!(
            kind(k.decrypt(&tampered, AAD)),
            ErrorKind::DecryptionFailed,
            "byte {i}"
        );
    }
    // Truncated and extended payloads.
    let cut = with_payload(&sealed, |raw| {
        raw.pop();
    });
    assert_eq!(kind(k.decrypt(&cut, AAD)), ErrorKind::DecryptionFailed);
    let longer = with_payload(&sealed, |raw| raw.push(0));
    assert_eq!(kind(k.decrypt(&longer, AAD)), ErrorKind::DecryptionFailed);
    let too_short = with_payload(&sealed, |raw| raw.truncate(NONCE_LEN + TAG_LEN - 1));
    assert_eq!(
        kind(k.decrypt(&too_short, AAD)),
        ErrorKind::MalformedCiphertext
    );
    let just_enough = with_payload(&sealed, |raw| raw.truncate(NONCE_LEN + TAG_LEN));
    assert_eq!(
        kind(k.decrypt(&just_enough, AAD)),
        ErrorKind::DecryptionFailed
    );
}

#[test]
fn unknown_key_id() {
    let old = ring("old", KEY_A);
    let sealed = old.encrypt(b"secret", AAD).unwrap();
    let other = ring("new", KEY_B);
    let err = other.decrypt(&sealed, AAD).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownKeyId);
    assert_eq!(err.key_id(), Some("old"));
    assert!(err.to_string().contains("\"old\""), "{err}");
    assert_eq!(kind(other.rotate(&sealed, AAD)), ErrorKind::UnknownKeyId);
}

#[test]
fn reused_key_id_with_other_bytes_is_a_key_mismatch() {
    let a = ring("default", KEY_A);
    let b = ring("default", KEY_B);
    let sealed = a.encrypt(b"secret", AAD).unwrap();
    let err = b.decrypt(&sealed, AAD).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyMismatch);
    assert_eq!(err.key_id(), Some("default"));
    // A forged key check is reported the same way, never as success.
    let check = key(KEY_A).check();
    let forged = sealed.replacen(&check, "00000000", 1);
    assert_eq!(kind(a.decrypt(&forged, AAD)), ErrorKind::KeyMismatch);
    // rotate must not treat a same-named but different key as current.
    assert_eq!(kind(b.rotate(&sealed, AAD)), ErrorKind::KeyMismatch);
}

#[test]
fn malformed_inputs_are_told_apart() {
    let k = ring("k1", KEY_A);
    let sealed = k.encrypt(b"secret", AAD).unwrap();
    let check = k.key_check("k1").unwrap().to_owned();
    let payload = sealed.rsplit_once(':').unwrap().1.to_owned();
    let cases = [
        ("", ErrorKind::MalformedCiphertext),
        ("plaintext-api-key", ErrorKind::MalformedCiphertext),
        ("v1", ErrorKind::MalformedCiphertext),
        ("v1:k1", ErrorKind::MalformedCiphertext),
        (
            &format!("v1:k1:{check}") as &str,
            ErrorKind::MalformedCiphertext,
        ),
        (
            &format!("v1::{check}:{payload}"),
            ErrorKind::MalformedCiphertext,
        ),
        (
            &format!("v1:k 1:{check}:{payload}"),
            ErrorKind::MalformedCiphertext,
        ),
        (
            &format!("v1:k1:{}:{payload}", check.to_uppercase()),
            ErrorKind::MalformedCiphertext,
        ),
        (
            &format!("v1:k1:abc:{payload}"),
            ErrorKind::MalformedCiphertext,
        ),
        (
            &format!("v1:k1:{check}:not base64!"),
            ErrorKind::MalformedCiphertext,
        ),
        (
            &format!("v1:k1:{check}:{payload}:extra"),
            ErrorKind::MalformedCiphertext,
        ),
        (
            &format!("V1:k1:{check}:{payload}"),
            ErrorKind::MalformedCiphertext,
        ),
        (
            &format!("vx:k1:{check}:{payload}"),
            ErrorKind::MalformedCiphertext,
        ),
        (
            &format!("v2:k1:{check}:{payload}"),
            ErrorKind::UnsupportedVersion,
        ),
        (
            &format!("v10:k1:{check}:{payload}"),
            ErrorKind::UnsupportedVersion,
        ),
        ("v2", ErrorKind::UnsupportedVersion),
    ];
    for (input, expected) in cases {
        assert_eq!(kind(k.decrypt(input, AAD)), expected, "{input:?}");
    }
    assert!(k
        .decrypt(&format!("v2:k1:{check}:{payload}"), AAD)
        .unwrap_err()
        .to_string()
        .contains("v2"));
    assert_eq!(kind(sealed_key_id("nope")), ErrorKind::MalformedCiphertext);
}

#[test]
fn rotation_procedure() {
    // Before: one key.
    let before = ring("2024", KEY_A);
    let sealed_old = before.encrypt(b"sk-old", AAD).unwrap();

    // Step 1: add the new key as active, keep the old one for decryption.
    let mut during = ring("2025", KEY_B);
    during.add_key("2024", key(KEY_A)).unwrap();
    assert_eq!(during.active_key_id(), "2025");
    assert_eq!(&during.decrypt(&sealed_old, AAD).unwrap()[..], b"sk-old");
    let sealed_new = during.encrypt(b"sk-new", AAD).unwrap();
    assert_eq!(sealed_key_id(&sealed_new).unwrap(), "2025");

    // Step 2: re-encrypt rows in place.
    let rotated = during
        .rotate(&sealed_old, AAD)
        .unwrap()
        .expect("old row is re-sealed");
    assert_eq!(sealed_key_id(&rotated).unwrap(), "2025");
    assert_eq!(during.rotate(&rotated, AAD).unwrap(), None);
    assert_eq!(during.rotate(&sealed_new, AAD).unwrap(), None);
    // The rotated value keeps its binding to the row.
    assert_eq!(
        kind(during.decrypt(&rotated, b"other-row")),
        ErrorKind::DecryptionFailed
    );
    // rotate authenticates what it re-seals.
    assert_eq!(
        kind(during.rotate(&sealed_old, b"other-row")),
        ErrorKind::DecryptionFailed
    );

    // Step 3: remove the old key.
    during.remove_key("2024").unwrap();
    assert_eq!(during.key_ids().collect::<Vec<_>>(), ["2025"]);
    assert_eq!(&during.decrypt(&rotated, AAD).unwrap()[..], b"sk-old");
    assert_eq!(&during.decrypt(&sealed_new, AAD).unwrap()[..], b"sk-new");
    assert_eq!(
        kind(during.decrypt(&sealed_old, AAD)),
        ErrorKind::UnknownKeyId
    );
}

#[test]
fn keyring_management_errors() {
    let mut k = ring("a", KEY_A);
    assert_eq!(kind(k.add_key("a", key(KEY_B))), ErrorKind::DuplicateKeyId);
    assert_eq!(kind(k.set_active("b")), ErrorKind::UnknownKeyId);
    assert_eq!(kind(k.remove_key("b")), ErrorKind::UnknownKeyId);
    assert_eq!(kind(k.remove_key("a")), ErrorKind::InvalidKeyring);
    k.add_key("b", key(KEY_B)).unwrap();
    k.add_key("c", key([3; 32])).unwrap();
    k.set_active("c").unwrap();
    // Removing a key before the active one keeps the same key active.
    k.remove_key("a").unwrap();
    assert_eq!(k.active_key_id(), "c");
    assert_eq!(sealed_key_id(&k.encrypt(b"x", AAD).unwrap()).unwrap(), "c");
    assert_eq!(k.key_check("a"), None);
}

#[test]
fn key_id_limits() {
    let max = "k".repeat(MAX_KEY_ID_LEN);
    assert!(Keyring::new(&max, key(KEY_A)).is_ok());
    let over = "k".repeat(MAX_KEY_ID_LEN + 1);
    assert_eq!(
        kind(Keyring::new(&over, key(KEY_A))),
        ErrorKind::InvalidKeyId
    );
    for bad in ["", "a:b", "a b", "a=b", "ключ", "a,b", "a/b"] {
        assert_eq!(
            kind(Keyring::new(bad, key(KEY_A))),
            ErrorKind::InvalidKeyId,
            "{bad:?}"
        );
    }
    for good in ["a", "A-1", "2025.06", "x_y"] {
        assert!(Keyring::new(good, key(KEY_A)).is_ok(), "{good:?}");
    }
}

#[test]
fn size_limits_at_their_edges() {
    let id = "k".repeat(MAX_KEY_ID_LEN);
    let k = Keyring::new(&id, key(KEY_A)).unwrap();
    let max = vec![7u8; MAX_PLAINTEXT_LEN];
    let sealed = k.encrypt(&max, AAD).unwrap();
    assert_eq!(sealed.len(), MAX_SEALED_LEN);
    assert_eq!(MAX_SEALED_LEN, 87_497, "docs/secrets.md quotes this value");
    assert_eq!(k.decrypt(&sealed, AAD).unwrap().len(), MAX_PLAINTEXT_LEN);

    let over = vec![7u8; MAX_PLAINTEXT_LEN + 1];
    let err = k.encrypt(&over, AAD).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    let longer = format!("{sealed}A");
    assert_eq!(kind(k.decrypt(&longer, AAD)), ErrorKind::TooLarge);
    assert_eq!(kind(sealed_key_id(&longer)), ErrorKind::TooLarge);
}

#[test]
fn key_parsing() {
    let text = key(KEY_A).to_base64();
    assert_eq!(text.len(), 44);
    let parsed = SecretKey::from_base64(&text).unwrap();
    assert_eq!(parsed.check(), key(KEY_A).check());
    // Padding optional, surrounding whitespace ignored.
    let unpadded = text.trim_end_matches('=');
    assert_eq!(
        SecretKey::from_base64(unpadded).unwrap().check(),
        key(KEY_A).check()
    );
    let spaced = format!("  {}\n", &*text);
    assert_eq!(
        SecretKey::from_base64(&spaced).unwrap().check(),
        key(KEY_A).check()
    );

    let b31 = STANDARD.encode([9u8; 31]);
    let b33 = STANDARD.encode([9u8; 33]);
    let b48 = STANDARD.encode([9u8; 48]);
    let long = "A".repeat(10_000);
    let url_safe = "-_".repeat(22);
    for bad in [
        &b31 as &str,
        &b33,
        &b48,
        "",
        "not base64 at all!!",
        &long,
        &url_safe,
    ] {
        let err = SecretKey::from_base64(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidKey, "{bad:?}");
        if !bad.is_empty() {
            assert!(!err.to_string().contains(bad));
            assert!(!format!("{err:?}").contains(bad));
        }
    }
}

#[test]
fn generated_keys_are_random_and_usable() {
    let a = SecretKey::generate().unwrap();
    let b = SecretKey::generate().unwrap();
    assert_ne!(a.to_base64().as_str(), b.to_base64().as_str());
    let k = Keyring::new("gen", a).unwrap();
    let sealed = k.encrypt(b"v", AAD).unwrap();
    assert_eq!(&k.decrypt(&sealed, AAD).unwrap()[..], b"v");
}

#[test]
fn config_parsing() {
    let a = key(KEY_A).to_base64();
    let b = key(KEY_B).to_base64();
    let k = Keyring::from_config(&format!(" new={} , old = {}", &*b, &*a)).unwrap();
    assert_eq!(k.active_key_id(), "new");
    assert_eq!(k.key_ids().collect::<Vec<_>>(), ["new", "old"]);
    assert_eq!(k.key_check("old"), Some(key(KEY_A).check().as_str()));

    assert_eq!(kind(Keyring::from_config("")), ErrorKind::InvalidKeyring);
    assert_eq!(
        kind(Keyring::from_config(&format!("new={},", &*b))),
        ErrorKind::InvalidKeyring
    );
    // A key pasted without an id must not be echoed back.
    let err = Keyring::from_config(&format!("new={},{}", &*b, &*a)).unwrap_err();
    assert!(matches!(
        err.kind(),
        ErrorKind::InvalidKeyId | ErrorKind::InvalidKey | ErrorKind::InvalidKeyring
    ));
    let bare = a.trim_end_matches('=');
    assert!(!err.to_string().contains(bare), "{err}");
    assert!(!format!("{err:?}").contains(bare));
    assert!(err.to_string().contains("entry 2"), "{err}");

    let dup = Keyring::from_config(&format!("x={},x={}", &*a, &*b)).unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::DuplicateKeyId);
    assert!(dup.to_string().contains("entry 2"), "{dup}");

    let bad_key = Keyring::from_config("x=c2hvcnQ=").unwrap_err();
    assert_eq!(bad_key.kind(), ErrorKind::InvalidKey);
    assert!(!bad_key.to_string().contains("c2hvcnQ"));
    assert_eq!(
        kind(Keyring::from_config(&format!("=={}", &*a))),
        ErrorKind::InvalidKeyId
    );
}

#[test]
fn debug_and_errors_never_show_key_bytes_or_plaintext() {
    let secret_key = key(KEY_A);
    let key_text = secret_key.to_base64().to_string();
    assert_eq!(format!("{secret_key:?}"), "SecretKey([REDACTED])");
    let mut k = Keyring::new("active", secret_key).unwrap();
    k.add_key("old", key(KEY_B)).unwrap();
    let shown = format!("{k:?} {k:#?}");
    assert!(shown.contains("active") && shown.contains("old"), "{shown}");
    assert!(!shown.contains(&key_text) && !shown.contains("17, 17") && !shown.contains("0x11"));
    assert!(
        !shown.contains(&key(KEY_A).check()),
        "Debug shows ids only: {shown}"
    );

    let plaintext = "sk-very-secret-plaintext";
    let sealed = k.encrypt(plaintext.as_bytes(), AAD).unwrap();
    let other = ring("active", KEY_B);
    let mut errors = vec![
        k.decrypt(&sealed, b"wrong").unwrap_err(),
        other.decrypt(&sealed, AAD).unwrap_err(),
        ring("zzz", KEY_B).decrypt(&sealed, AAD).unwrap_err(),
        k.decrypt(&with_payload(&sealed, |r| r[20] ^= 1), AAD)
            .unwrap_err(),
        k.decrypt(plaintext, AAD).unwrap_err(),
        k.encrypt(&vec![b'x'; MAX_PLAINTEXT_LEN + 1], AAD)
            .unwrap_err(),
    ];
    let not_utf8 = k.encrypt(&[0xff, 0xfe], AAD).unwrap();
    errors.push(k.decrypt_secret(&not_utf8, AAD).unwrap_err());
    for err in &errors {
        let text = format!("{err} {err:?}");
        assert!(!text.contains(plaintext), "{text}");
        assert!(!text.contains(&key_text), "{text}");
        assert!(!text.contains(sealed.rsplit_once(':').unwrap().1), "{text}");
    }
    assert_eq!(errors.last().unwrap().kind(), ErrorKind::NotUtf8);
}

#[test]
fn keyring_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Keyring>();
    assert_send_sync::<SecretKey>();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_plaintext_round_trips(
        plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
        aad in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let k = ring("p", KEY_A);
        let sealed = k.encrypt(&plaintext, &aad).unwrap();
        prop_assert_eq!(&k.decrypt(&sealed, &aad).unwrap()[..], &plaintext[..]);
        prop_assert_eq!(k.rotate(&sealed, &aad).unwrap(), None);
    }

    #[test]
    fn arbitrary_text_never_panics(input in ".{0,200}") {
        let k = ring("p", KEY_A);
        let _ = k.decrypt(&input, AAD);
        let _ = k.rotate(&input, AAD);
        let _ = sealed_key_id(&input);
        let _ = SecretKey::from_base64(&input);
        let _ = Keyring::from_config(&input);
    }

    #[test]
    fn structured_garbage_never_panics_or_opens(
        version in "v[0-9]{0,3}",
        id in "[a-z:]{0,5}",
        check in "[0-9a-f]{0,9}",
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let k = ring("p", KEY_A);
        let input = format!("{version}:{id}:{check}:{}", STANDARD.encode(&payload));
        prop_assert!(k.decrypt(&input, AAD).is_err());
    }

    #[test]
    fn any_single_character_change_is_rejected(pos in 0usize..200, replacement in proptest::char::range('!', '~')) {
        let k = ring("p", KEY_A);
        let sealed = k.encrypt(b"a secret api key", AAD).unwrap();
        let pos = pos % sealed.len();
        let mut chars: Vec<char> = sealed.chars().collect();
        prop_assume!(chars[pos] != replacement);
        chars[pos] = replacement;
        let changed: String = chars.into_iter().collect();
        prop_assert!(k.decrypt(&changed, AAD).is_err());
    }
}
