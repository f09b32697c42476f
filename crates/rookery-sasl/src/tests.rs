use super::*;

fn keys(hash: HashAlgo, salt_b64: &str) -> ScramKeys {
    ScramKeys::derive(hash, "pencil", &B64.decode(salt_b64).unwrap(), 4096).unwrap()
}

/// Run a whole exchange; returns the server's verdict and whether the client accepted it.
fn exchange(
    mut client: ScramClient,
    mut server: ScramServer,
    keys: Option<ScramKeys>,
) -> Result<(), SaslError> {
    let first = server.client_first(&client.client_first())?;
    assert_eq!(first.username, "user");
    let sf = server.server_first(keys);
    let cf = client.client_final(&sf)?;
    let v = server.client_final(&cf)?;
    client.verify_server_final(&v)
}

#[test]
fn rfc5802_scram_sha1_example() {
    let mut c = ScramClient::new(HashAlgo::Sha1, "user", "pencil", None)
        .with_nonce("fyko+d2lbbFgONRv9qkxdawL");
    assert_eq!(c.client_first(), b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
    let cf = c
        .client_final(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
        .unwrap();
    assert_eq!(
        String::from_utf8(cf).unwrap(),
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
    );
    c.verify_server_final(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
        .unwrap();

    let mut s = ScramServer::new(HashAlgo::Sha1, false, false, ChannelBindings::default())
        .with_server_nonce("3rfcNHYJY1ZVvWVs7j");
    s.client_first(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")
        .unwrap();
    let sf = s.server_first(Some(keys(HashAlgo::Sha1, "QSXCR+Q6sek8bf92")));
    assert_eq!(
        sf,
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
    );
    let v = s
        .client_final(
            b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        )
        .unwrap();
    assert_eq!(v, b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
}

#[test]
fn rfc7677_scram_sha256_example() {
    let mut c = ScramClient::new(HashAlgo::Sha256, "user", "pencil", None)
        .with_nonce("rOprNGfwEbeRWgbNEkqO");
    c.client_first();
    let cf = c
        .client_final(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
        .unwrap();
    assert_eq!(
        String::from_utf8(cf.clone()).unwrap(),
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    );
    c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        .unwrap();

    let mut s = ScramServer::new(HashAlgo::Sha256, false, false, ChannelBindings::default())
        .with_server_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    s.client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
    s.server_first(Some(keys(HashAlgo::Sha256, "W22ZaJ0SNY7soEsUEjb6gQ==")));
    assert_eq!(
        s.client_final(&cf).unwrap(),
        b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    );
}

fn bindings() -> ChannelBindings {
    ChannelBindings {
        tls_exporter: Some(vec![7; 32]),
        tls_server_end_point: Some(vec![9; 32]),
    }
}

#[test]
fn every_mechanism_round_trips() {
    for hash in [HashAlgo::Sha1, HashAlgo::Sha256] {
        let k = ScramKeys::generate(hash, "pencil", 4096).unwrap();
        let c = ScramClient::new(hash, "user", "pencil", None);
        let s = ScramServer::new(hash, false, true, bindings());
        exchange(c, s, Some(k.clone())).unwrap();
        for (t, data) in [
            (CbType::TlsExporter, vec![7; 32]),
            (CbType::TlsServerEndPoint, vec![9; 32]),
        ] {
            let c = ScramClient::new(hash, "user", "pencil", Some((t, data)));
            let s = ScramServer::new(hash, true, true, bindings());
            exchange(c, s, Some(k.clone())).unwrap();
        }
    }
}

#[test]
fn a_wrong_password_or_unknown_user_is_not_authorized() {
    let k = ScramKeys::generate(HashAlgo::Sha256, "pencil", 4096).unwrap();
    let c = ScramClient::new(HashAlgo::Sha256, "user", "crayon", None);
    let s = ScramServer::new(HashAlgo::Sha256, false, false, ChannelBindings::default());
    assert_eq!(exchange(c, s, Some(k)), Err(SaslError::NotAuthorized));
    let c = ScramClient::new(HashAlgo::Sha256, "user", "pencil", None);
    let s = ScramServer::new(HashAlgo::Sha256, false, false, ChannelBindings::default());
    assert_eq!(exchange(c, s, None), Err(SaslError::NotAuthorized));
}

#[test]
fn channel_binding_mismatches_are_refused() {
    let k = ScramKeys::generate(HashAlgo::Sha256, "pencil", 4096).unwrap();
    // Data from another connection.
    let c = ScramClient::new(
        HashAlgo::Sha256,
        "user",
        "pencil",
        Some((CbType::TlsExporter, vec![1; 32])),
    );
    let s = ScramServer::new(HashAlgo::Sha256, true, true, bindings());
    assert!(matches!(
        exchange(c, s, Some(k.clone())),
        Err(SaslError::ChannelBinding(_))
    ));
    // 'p' with a mechanism without -PLUS.
    let mut s = ScramServer::new(HashAlgo::Sha256, false, true, bindings());
    assert!(matches!(
        s.client_first(b"p=tls-exporter,,n=user,r=abc"),
        Err(SaslError::ChannelBinding(_))
    ));
    // -PLUS without binding.
    let mut s = ScramServer::new(HashAlgo::Sha256, true, true, bindings());
    assert!(matches!(
        s.client_first(b"n,,n=user,r=abc"),
        Err(SaslError::ChannelBinding(_))
    ));
    // A type we cannot provide.
    let mut s = ScramServer::new(HashAlgo::Sha256, true, true, bindings());
    assert!(matches!(
        s.client_first(b"p=tls-unique,,n=user,r=abc"),
        Err(SaslError::ChannelBinding(_))
    ));
}

#[test]
fn flag_y_after_a_plus_offer_is_accepted_and_noted() {
    let k = ScramKeys::generate(HashAlgo::Sha1, "pencil", 4096).unwrap();
    let mut c = ScramClient::new(HashAlgo::Sha1, "user", "pencil", None).with_gs2_flag_y();
    let mut s = ScramServer::new(HashAlgo::Sha1, false, true, bindings());
    s.client_first(&c.client_first()).unwrap();
    let cf = c.client_final(&s.server_first(Some(k))).unwrap();
    s.client_final(&cf).unwrap();
    assert!(s.downgrade_flag_seen());
}

#[test]
fn malformed_messages_are_refused() {
    let mut s = ScramServer::new(HashAlgo::Sha1, false, false, ChannelBindings::default());
    assert!(matches!(
        s.client_first(b"x,,n=user,r=abc"),
        Err(SaslError::MalformedRequest(_))
    ));
    let mut s = ScramServer::new(HashAlgo::Sha1, false, false, ChannelBindings::default());
    assert!(matches!(
        s.client_first(b"n,,m=ext,n=user,r=abc"),
        Err(SaslError::MalformedRequest(_))
    ));
    let mut s = ScramServer::new(HashAlgo::Sha1, false, false, ChannelBindings::default());
    assert!(matches!(
        s.client_first(b"n,,n=us=zzer,r=abc"),
        Err(SaslError::MalformedRequest(_))
    ));
    let mut s = ScramServer::new(HashAlgo::Sha1, false, false, ChannelBindings::default());
    assert!(s.client_first(b"\xff").is_err());
}

#[test]
fn usernames_with_comma_and_equals_are_escaped() {
    let mut c = ScramClient::new(HashAlgo::Sha1, "a,b=c", "pw", None).with_nonce("n1");
    assert_eq!(c.client_first(), b"n,,n=a=2Cb=3Dc,r=n1");
    let mut s = ScramServer::new(HashAlgo::Sha1, false, false, ChannelBindings::default());
    assert_eq!(
        s.client_first(b"n,,n=a=2Cb=3Dc,r=n1").unwrap().username,
        "a,b=c"
    );
}

#[test]
fn authzid_is_reported() {
    let mut s = ScramServer::new(HashAlgo::Sha1, false, false, ChannelBindings::default());
    let f = s.client_first(b"n,a=user@localhost,n=user,r=abc").unwrap();
    assert_eq!(f.authzid.as_deref(), Some("user@localhost"));
}

#[test]
fn plain_messages() {
    assert_eq!(
        parse_plain(b"\0alice\0secret").unwrap(),
        (None, "alice".to_owned(), "secret".to_owned())
    );
    assert_eq!(
        parse_plain(&plain_message(Some("alice@x"), "alice", "pw"))
            .unwrap()
            .0
            .as_deref(),
        Some("alice@x")
    );
    assert!(parse_plain(b"alice\0secret").is_err());
    assert!(parse_plain(b"\0\0secret").is_err());
    assert!(parse_plain(b"\0alice\0").is_err());
    assert!(parse_plain(b"\0al\0ice\0pw").is_err());
    assert!(parse_plain(b"\0\xffalice\0pw").is_err());
}

#[test]
fn plain_passwords_are_checked_against_scram_keys() {
    let k = ScramKeys::generate(HashAlgo::Sha256, "pencil", 4096).unwrap();
    assert!(k.verify_password("pencil"));
    assert!(!k.verify_password("crayon"));
}
