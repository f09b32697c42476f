use super::*;

fn no_cb() -> ChannelBindings {
    ChannelBindings::default()
}

fn bindings() -> ChannelBindings {
    ChannelBindings {
        tls_exporter: Some(vec![7; 32]),
        tls_server_end_point: Some(vec![9; 32]),
    }
}

fn pencil(hash: HashAlgo) -> ScramKeys {
    ScramKeys::generate(hash, "pencil", DEFAULT_ITERATIONS).unwrap()
}

fn s(v: &[u8]) -> &str {
    std::str::from_utf8(v).unwrap()
}

/// Run a whole exchange; returns the server's verdict, then the client's.
fn exchange(
    mut client: ScramClient,
    mut server: ScramServer,
    keys: Option<ScramKeys>,
) -> Result<ClientFirst, SaslError> {
    let first = server.client_first(&client.client_first())?;
    let sf = server.server_first(keys);
    let cf = client.client_final(&sf)?;
    let v = server.client_final(&cf)?;
    client.verify_server_final(&v)?;
    Ok(first)
}

// --- test vectors -----------------------------------------------------------------------

const RFC5802_CLIENT_FIRST: &str = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL";
const RFC5802_SERVER_FIRST: &str =
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
const RFC5802_CLIENT_FINAL: &str =
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
const RFC5802_SERVER_FINAL: &str = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";

const RFC7677_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC7677_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC7677_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC7677_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn rfc_keys(hash: HashAlgo, salt_b64: &str) -> ScramKeys {
    ScramKeys::derive(hash, "pencil", &B64.decode(salt_b64).unwrap(), 4096).unwrap()
}

#[test]
fn rfc5802_scram_sha1_client() {
    let mut c = ScramClient::new(HashAlgo::Sha1, "user", "pencil", None)
        .with_nonce("fyko+d2lbbFgONRv9qkxdawL");
    assert_eq!(s(&c.client_first()), RFC5802_CLIENT_FIRST);
    let cf = c.client_final(RFC5802_SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(s(&cf), RFC5802_CLIENT_FINAL);
    c.verify_server_final(RFC5802_SERVER_FINAL.as_bytes())
        .unwrap();
    assert_eq!(
        c.verify_server_final(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        Err(SaslError::NotAuthorized)
    );
}

#[test]
fn rfc5802_scram_sha1_server() {
    let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb())
        .with_server_nonce("3rfcNHYJY1ZVvWVs7j");
    let first = srv.client_first(RFC5802_CLIENT_FIRST.as_bytes()).unwrap();
    assert_eq!(
        first,
        ClientFirst {
            username: "user".into(),
            authzid: None
        }
    );
    let sf = srv.server_first(Some(rfc_keys(HashAlgo::Sha1, "QSXCR+Q6sek8bf92")));
    assert_eq!(s(&sf), RFC5802_SERVER_FIRST);
    let v = srv.client_final(RFC5802_CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(s(&v), RFC5802_SERVER_FINAL);
    assert!(!srv.downgrade_flag_seen());
}

#[test]
fn rfc7677_scram_sha256_client() {
    let mut c = ScramClient::new(HashAlgo::Sha256, "user", "pencil", None)
        .with_nonce("rOprNGfwEbeRWgbNEkqO");
    assert_eq!(s(&c.client_first()), RFC7677_CLIENT_FIRST);
    let cf = c.client_final(RFC7677_SERVER_FIRST.as_bytes()).unwrap();
    assert_eq!(s(&cf), RFC7677_CLIENT_FINAL);
    c.verify_server_final(RFC7677_SERVER_FINAL.as_bytes())
        .unwrap();
}

#[test]
fn rfc7677_scram_sha256_server() {
    let mut srv = ScramServer::new(HashAlgo::Sha256, false, false, no_cb())
        .with_server_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    srv.client_first(RFC7677_CLIENT_FIRST.as_bytes()).unwrap();
    let sf = srv.server_first(Some(rfc_keys(HashAlgo::Sha256, "W22ZaJ0SNY7soEsUEjb6gQ==")));
    assert_eq!(s(&sf), RFC7677_SERVER_FIRST);
    let v = srv.client_final(RFC7677_CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(s(&v), RFC7677_SERVER_FINAL);
}

#[test]
fn rfc_proofs_are_refused_for_a_different_password() {
    let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb())
        .with_server_nonce("3rfcNHYJY1ZVvWVs7j");
    srv.client_first(RFC5802_CLIENT_FIRST.as_bytes()).unwrap();
    let salt = B64.decode("QSXCR+Q6sek8bf92").unwrap();
    srv.server_first(Some(
        ScramKeys::derive(HashAlgo::Sha1, "crayon", &salt, 4096).unwrap(),
    ));
    assert_eq!(
        srv.client_final(RFC5802_CLIENT_FINAL.as_bytes()),
        Err(SaslError::NotAuthorized)
    );
}

// --- round trips ------------------------------------------------------------------------

#[test]
fn every_mechanism_round_trips() {
    for hash in [HashAlgo::Sha1, HashAlgo::Sha256] {
        let k = pencil(hash);
        for offered_plus in [false, true] {
            let c = ScramClient::new(hash, "user", "pencil", None);
            let srv = ScramServer::new(hash, false, offered_plus, bindings());
            let first = exchange(c, srv, Some(k.clone())).unwrap();
            assert_eq!(first.username, "user");
        }
        for (t, data) in [
            (CbType::TlsExporter, vec![7; 32]),
            (CbType::TlsServerEndPoint, vec![9; 32]),
        ] {
            let c = ScramClient::new(hash, "user", "pencil", Some((t, data)));
            let srv = ScramServer::new(hash, true, true, bindings());
            exchange(c, srv, Some(k.clone())).unwrap();
        }
    }
}

#[test]
fn plus_client_first_messages_carry_the_binding_type() {
    let mut c = ScramClient::new(
        HashAlgo::Sha256,
        "user",
        "pw",
        Some((CbType::TlsExporter, vec![1])),
    )
    .with_nonce("abc");
    assert_eq!(s(&c.client_first()), "p=tls-exporter,,n=user,r=abc");
    let mut c = ScramClient::new(
        HashAlgo::Sha1,
        "user",
        "pw",
        Some((CbType::TlsServerEndPoint, vec![1])),
    )
    .with_nonce("abc");
    assert_eq!(s(&c.client_first()), "p=tls-server-end-point,,n=user,r=abc");
}

#[test]
fn non_ascii_usernames_and_passwords_round_trip() {
    // U+00A0 (non-ASCII space) is mapped to a space by SASLprep on both sides.
    let k = ScramKeys::generate(HashAlgo::Sha256, "pen cil ☃", 4096).unwrap();
    let c = ScramClient::new(HashAlgo::Sha256, "jürgen", "pen\u{a0}cil ☃", None);
    let srv = ScramServer::new(HashAlgo::Sha256, false, false, no_cb());
    assert_eq!(exchange(c, srv, Some(k)).unwrap().username, "jürgen");
}

#[test]
fn authzid_round_trips_escaped() {
    let mut c = ScramClient::new(HashAlgo::Sha1, "user", "pencil", None)
        .with_authzid("od=d,one@example.com")
        .with_nonce("n1");
    let cf = c.client_first();
    assert_eq!(s(&cf), "n,a=od=3Dd=2Cone@example.com,n=user,r=n1");
    let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb());
    let first = srv.client_first(&cf).unwrap();
    assert_eq!(first.authzid.as_deref(), Some("od=d,one@example.com"));
    let fin = c
        .client_final(&srv.server_first(Some(pencil(HashAlgo::Sha1))))
        .unwrap();
    let v = srv.client_final(&fin).unwrap();
    c.verify_server_final(&v).unwrap();
}

#[test]
fn authzid_is_reported() {
    let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb());
    let f = srv
        .client_first(b"n,a=user@localhost,n=user,r=abc")
        .unwrap();
    assert_eq!(f.authzid.as_deref(), Some("user@localhost"));
    for bad in [
        "n,a=,n=user,r=abc",
        "n,b=x,n=user,r=abc",
        "n,a=x=2,n=user,r=abc",
    ] {
        let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb());
        assert!(matches!(
            srv.client_first(bad.as_bytes()),
            Err(SaslError::MalformedRequest(_))
        ));
    }
}

// --- authentication failures ------------------------------------------------------------

#[test]
fn a_wrong_password_is_not_authorized() {
    for hash in [HashAlgo::Sha1, HashAlgo::Sha256] {
        let c = ScramClient::new(hash, "user", "crayon", None);
        let srv = ScramServer::new(hash, false, false, no_cb());
        assert_eq!(
            exchange(c, srv, Some(pencil(hash))),
            Err(SaslError::NotAuthorized)
        );
    }
}

#[test]
fn an_unknown_user_fails_only_at_the_end() {
    let mut c = ScramClient::new(HashAlgo::Sha256, "ghost", "pencil", None);
    let mut srv = ScramServer::new(HashAlgo::Sha256, false, false, no_cb());
    srv.client_first(&c.client_first()).unwrap();
    let sf = srv.server_first(None);
    // The challenge looks like a real one: a 16-byte salt and the usual iterations.
    let cf = c.client_final(&sf).unwrap();
    let salt = s(&sf)
        .split(',')
        .nth(1)
        .unwrap()
        .strip_prefix("s=")
        .unwrap();
    assert_eq!(B64.decode(salt).unwrap().len(), SALT_LEN);
    assert!(s(&sf).ends_with(",i=4096"));
    let err = srv.client_final(&cf).unwrap_err();
    assert_eq!(err, SaslError::NotAuthorized);
    assert_eq!(err.condition(), "not-authorized");
}

#[test]
fn unknown_users_get_a_stable_salt_per_username() {
    let salt_of = |user: &str| {
        let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb());
        srv.client_first(format!("n,,n={user},r=abc").as_bytes())
            .unwrap();
        let sf = srv.server_first(None);
        s(&sf).split(',').nth(1).unwrap().to_owned()
    };
    assert_eq!(salt_of("ghost"), salt_of("ghost"));
    assert_ne!(salt_of("ghost"), salt_of("spectre"));
    let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb())
        .with_unknown_user_iterations(10_000);
    srv.client_first(b"n,,n=ghost,r=abc").unwrap();
    assert!(s(&srv.server_first(None)).ends_with(",i=10000"));
}

#[test]
fn keys_for_another_hash_count_as_an_unknown_user() {
    let c = ScramClient::new(HashAlgo::Sha256, "user", "pencil", None);
    let srv = ScramServer::new(HashAlgo::Sha256, false, false, no_cb());
    assert_eq!(
        exchange(c, srv, Some(pencil(HashAlgo::Sha1))),
        Err(SaslError::NotAuthorized)
    );
}

#[test]
fn a_client_final_with_another_nonce_is_refused() {
    for tamper in ["", "x"] {
        let mut c = ScramClient::new(HashAlgo::Sha1, "user", "pencil", None);
        let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb());
        srv.client_first(&c.client_first()).unwrap();
        let sf = srv.server_first(Some(pencil(HashAlgo::Sha1)));
        let cf = s(&c.client_final(&sf).unwrap()).to_owned();
        let (without_proof, proof) = cf.rsplit_once(",p=").unwrap();
        let bad = if tamper.is_empty() {
            // The client nonce alone, without the server's part.
            let r = without_proof.split(',').nth(1).unwrap();
            let client_nonce = &r[..r.len() - 32];
            format!("c=biws,{client_nonce},p={proof}")
        } else {
            format!("{without_proof}{tamper},p={proof}")
        };
        assert!(matches!(
            srv.client_final(bad.as_bytes()),
            Err(SaslError::MalformedRequest(_))
        ));
    }
}

#[test]
fn server_nonces_are_long_and_random() {
    let nonce_of = || {
        let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb());
        srv.client_first(b"n,,n=user,r=abc").unwrap();
        let sf = srv.server_first(None);
        s(&sf)
            .split(',')
            .next()
            .unwrap()
            .strip_prefix("r=abc")
            .unwrap()
            .to_owned()
    };
    let (a, b) = (nonce_of(), nonce_of());
    assert_ne!(a, b);
    assert!(B64.decode(&a).unwrap().len() >= 18);
}

// --- channel binding --------------------------------------------------------------------

#[test]
fn channel_binding_data_mismatch_is_refused() {
    let k = pencil(HashAlgo::Sha256);
    for t in [CbType::TlsExporter, CbType::TlsServerEndPoint] {
        let c = ScramClient::new(HashAlgo::Sha256, "user", "pencil", Some((t, vec![1; 32])));
        let srv = ScramServer::new(HashAlgo::Sha256, true, true, bindings());
        let err = exchange(c, srv, Some(k.clone())).unwrap_err();
        assert!(matches!(err, SaslError::ChannelBinding(_)), "{err:?}");
        assert_eq!(err.condition(), "not-authorized");
    }
}

#[test]
fn the_c_attribute_must_repeat_the_gs2_header_exactly() {
    let k = pencil(HashAlgo::Sha1);
    // Client-first says 'y', client-final claims 'n' (biws = "n,,").
    let mut c = ScramClient::new(HashAlgo::Sha1, "user", "pencil", None).with_nonce("abc");
    let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb());
    srv.client_first(b"y,,n=user,r=abc").unwrap();
    c.client_first();
    let cf = c.client_final(&srv.server_first(Some(k.clone()))).unwrap();
    assert!(matches!(
        srv.client_final(&cf),
        Err(SaslError::ChannelBinding(_))
    ));

    // -PLUS: c= carries only the gs2 header, without the binding data.
    let mut srv = ScramServer::new(HashAlgo::Sha1, true, true, bindings());
    srv.client_first(b"p=tls-exporter,,n=user,r=abc").unwrap();
    let sf = s(&srv.server_first(Some(k))).to_owned();
    let r = sf.split(',').next().unwrap();
    let cf = format!(
        "c={},{r},p=AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        B64.encode("p=tls-exporter,,")
    );
    assert!(matches!(
        srv.client_final(cf.as_bytes()),
        Err(SaslError::ChannelBinding(_))
    ));
}

#[test]
fn flag_p_with_a_mechanism_without_plus_is_refused() {
    let mut srv = ScramServer::new(HashAlgo::Sha256, false, true, bindings());
    assert!(matches!(
        srv.client_first(b"p=tls-exporter,,n=user,r=abc"),
        Err(SaslError::ChannelBinding(_))
    ));
}

#[test]
fn plus_mechanisms_without_flag_p_are_refused() {
    for msg in ["n,,n=user,r=abc", "y,,n=user,r=abc"] {
        let mut srv = ScramServer::new(HashAlgo::Sha256, true, true, bindings());
        assert!(matches!(
            srv.client_first(msg.as_bytes()),
            Err(SaslError::ChannelBinding(_))
        ));
    }
}

#[test]
fn unsupported_or_unavailable_binding_types_are_refused() {
    let mut srv = ScramServer::new(HashAlgo::Sha256, true, true, bindings());
    let err = srv.client_first(b"p=tls-unique,,n=user,r=abc").unwrap_err();
    assert!(matches!(err, SaslError::ChannelBinding(_)), "{err:?}");
    // tls-exporter is not available on a TLS 1.2 connection.
    let tls12 = ChannelBindings {
        tls_exporter: None,
        tls_server_end_point: Some(vec![9; 32]),
    };
    let mut srv = ScramServer::new(HashAlgo::Sha256, true, true, tls12);
    assert!(matches!(
        srv.client_first(b"p=tls-exporter,,n=user,r=abc"),
        Err(SaslError::ChannelBinding(_))
    ));
    // Not a cb-name at all.
    let mut srv = ScramServer::new(HashAlgo::Sha256, true, true, bindings());
    assert!(matches!(
        srv.client_first(b"p=tls exporter,,n=user,r=abc"),
        Err(SaslError::MalformedRequest(_))
    ));
}

#[test]
fn flag_y_after_a_plus_offer_is_accepted_and_noted() {
    let k = pencil(HashAlgo::Sha1);
    let mut c = ScramClient::new(HashAlgo::Sha1, "user", "pencil", None).with_gs2_flag_y();
    let mut srv = ScramServer::new(HashAlgo::Sha1, false, true, bindings());
    let cf1 = c.client_first();
    assert!(cf1.starts_with(b"y,,"));
    srv.client_first(&cf1).unwrap();
    let cf = c.client_final(&srv.server_first(Some(k))).unwrap();
    assert!(cf.starts_with(b"c=eSws,")); // base64("y,,")
    let v = srv.client_final(&cf).unwrap();
    c.verify_server_final(&v).unwrap();
    assert!(srv.downgrade_flag_seen());
}

#[test]
fn flag_y_without_a_plus_offer_is_normal() {
    let c =
        ScramClient::new(HashAlgo::Sha256, "user", "pencil", None).with_client_supports_binding();
    let srv = ScramServer::new(HashAlgo::Sha256, false, false, no_cb());
    let mut srv_probe = ScramServer::new(HashAlgo::Sha256, false, false, no_cb());
    srv_probe.client_first(b"y,,n=user,r=abc").unwrap();
    assert!(!srv_probe.downgrade_flag_seen());
    exchange(c, srv, Some(pencil(HashAlgo::Sha256))).unwrap();
}

#[test]
fn channel_bindings_list_what_is_available() {
    assert_eq!(
        bindings().available(),
        vec![CbType::TlsExporter, CbType::TlsServerEndPoint]
    );
    assert!(no_cb().available().is_empty());
    assert_eq!(
        bindings().get(CbType::TlsServerEndPoint),
        Some(&[9u8; 32][..])
    );
}

// --- syntax -----------------------------------------------------------------------------

#[test]
fn malformed_client_first_messages_are_refused() {
    for bad in [
        &b"x,,n=user,r=abc"[..],
        b"n,,m=ext,n=user,r=abc",
        b"n,,n=us=zzer,r=abc",
        b"n,,n=us=2cer,r=abc",
        b"n,,n=user=,r=abc",
        b"n,,n=,r=abc",
        b"n,,r=abc,n=user",
        b"n,,n=user",
        b"n,,n=user,r=",
        b"n,,n=user,r=a\x7fb",
        b"n,,n=user,r=abc,1=x",
        b"n,n=user,r=abc",
        b"n",
        b"",
        b"\xff,,n=user,r=abc",
        b"n,,n=\xff,r=abc",
        b"n,,n=us\0er,r=abc",
    ] {
        let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb());
        let err = srv.client_first(bad).unwrap_err();
        assert!(
            matches!(err, SaslError::MalformedRequest(_)),
            "{:?}: {err:?}",
            String::from_utf8_lossy(bad)
        );
        assert_eq!(err.condition(), "malformed-request");
    }
}

#[test]
fn usernames_starting_with_m_and_extensions_are_fine() {
    let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb());
    assert_eq!(
        srv.client_first(b"n,,n=mike,r=abc,x=ext").unwrap().username,
        "mike"
    );
    assert_eq!(srv.username(), "mike");
}

#[test]
fn usernames_with_comma_and_equals_are_escaped() {
    let mut c = ScramClient::new(HashAlgo::Sha1, "a,b=c", "pw", None).with_nonce("n1");
    assert_eq!(s(&c.client_first()), "n,,n=a=2Cb=3Dc,r=n1");
    let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb());
    assert_eq!(
        srv.client_first(b"n,,n=a=2Cb=3Dc,r=n1").unwrap().username,
        "a,b=c"
    );
    let k = ScramKeys::generate(HashAlgo::Sha1, "pw", 4096).unwrap();
    let c = ScramClient::new(HashAlgo::Sha1, "a,b=c", "pw", None);
    let srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb());
    assert_eq!(exchange(c, srv, Some(k)).unwrap().username, "a,b=c");
}

#[test]
fn saslname_escaping_helpers() {
    assert_eq!(encode_saslname("=,=,"), "=3D=2C=3D=2C");
    assert_eq!(decode_saslname("=3D=2C=3D=2C").unwrap(), "=,=,");
    assert_eq!(decode_saslname("plain").unwrap(), "plain");
    for bad in ["", "=", "=2", "=3d", "a=41", "a,b"] {
        assert!(decode_saslname(bad).is_err(), "{bad}");
    }
}

#[test]
fn malformed_client_final_messages_are_refused() {
    let setup = || {
        let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb())
            .with_server_nonce("3rfcNHYJY1ZVvWVs7j");
        srv.client_first(RFC5802_CLIENT_FIRST.as_bytes()).unwrap();
        srv.server_first(Some(rfc_keys(HashAlgo::Sha1, "QSXCR+Q6sek8bf92")));
        srv
    };
    let r = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
    for bad in [
        format!("c=biws,{r}"),
        format!("c=biws,{r},p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=,x=1"),
        format!("{r},c=biws,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="),
        format!("c=biws,{r},p=not base64"),
        format!("c=biws,{r},p=AAAA"),
        format!("c=bi!s,{r},p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="),
        "\u{ff}".to_owned(),
    ] {
        let err = setup().client_final(bad.as_bytes()).unwrap_err();
        assert!(
            matches!(err, SaslError::MalformedRequest(_)),
            "{bad}: {err:?}"
        );
    }
    // An extension before the proof is allowed (and covered by the proof, so it fails).
    let err = setup()
        .client_final(format!("c=biws,{r},x=1,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=").as_bytes())
        .unwrap_err();
    assert_eq!(err, SaslError::NotAuthorized);
}

#[test]
fn server_steps_out_of_order_fail() {
    let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb());
    assert!(matches!(
        srv.client_final(RFC5802_CLIENT_FINAL.as_bytes()),
        Err(SaslError::Other(_))
    ));

    let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb());
    assert!(srv.server_first(Some(pencil(HashAlgo::Sha1))).is_empty());
    assert!(srv.client_first(RFC5802_CLIENT_FIRST.as_bytes()).is_err());

    // A proof is checked only once.
    let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb())
        .with_server_nonce("3rfcNHYJY1ZVvWVs7j");
    srv.client_first(RFC5802_CLIENT_FIRST.as_bytes()).unwrap();
    assert!(srv.client_first(RFC5802_CLIENT_FIRST.as_bytes()).is_err());
    srv.server_first(Some(rfc_keys(HashAlgo::Sha1, "QSXCR+Q6sek8bf92")));
    srv.client_final(RFC5802_CLIENT_FINAL.as_bytes()).unwrap();
    assert!(srv.client_final(RFC5802_CLIENT_FINAL.as_bytes()).is_err());

    // After a failed client-first nothing more happens.
    let mut srv = ScramServer::new(HashAlgo::Sha1, false, false, no_cb());
    assert!(srv.client_first(b"garbage").is_err());
    assert!(srv.server_first(None).is_empty());
}

#[test]
fn the_client_checks_the_server_first_message() {
    let nonce = "fyko+d2lbbFgONRv9qkxdawL";
    for bad in [
        // Iterations below 4096.
        format!("r={nonce}xyz,s=QSXCR+Q6sek8bf92,i=4095"),
        format!("r={nonce}xyz,s=QSXCR+Q6sek8bf92,i=0"),
        format!("r={nonce}xyz,s=QSXCR+Q6sek8bf92,i=+5000"),
        format!("r={nonce}xyz,s=QSXCR+Q6sek8bf92,i=99999999999"),
        // Nonce not extending ours, or not extending it at all.
        format!("r=other{nonce},s=QSXCR+Q6sek8bf92,i=4096"),
        format!("r={nonce},s=QSXCR+Q6sek8bf92,i=4096"),
        // Salt.
        format!("r={nonce}xyz,s=,i=4096"),
        format!("r={nonce}xyz,s=***,i=4096"),
        // Structure.
        format!("m=ext,r={nonce}xyz,s=QSXCR+Q6sek8bf92,i=4096"),
        format!("r={nonce}xyz,i=4096,s=QSXCR+Q6sek8bf92"),
        format!("r={nonce}xyz,s=QSXCR+Q6sek8bf92"),
    ] {
        let mut c = ScramClient::new(HashAlgo::Sha1, "user", "pencil", None).with_nonce(nonce);
        c.client_first();
        let err = c.client_final(bad.as_bytes()).unwrap_err();
        assert!(
            matches!(err, SaslError::MalformedRequest(_)),
            "{bad}: {err:?}"
        );
    }
    let mut c = ScramClient::new(HashAlgo::Sha1, "user", "pencil", None).with_nonce(nonce);
    c.client_first();
    assert!(matches!(
        c.client_final(b"e=other-error"),
        Err(SaslError::Other(_))
    ));
    // Larger iteration counts and extensions are accepted.
    let mut c = ScramClient::new(HashAlgo::Sha1, "user", "pencil", None).with_nonce(nonce);
    c.client_first();
    c.client_final(format!("r={nonce}xyz,s=QSXCR+Q6sek8bf92,i=4097,x=ext").as_bytes())
        .unwrap();
}

#[test]
fn the_client_checks_the_server_final_message() {
    let mut c = ScramClient::new(HashAlgo::Sha1, "user", "pencil", None)
        .with_nonce("fyko+d2lbbFgONRv9qkxdawL");
    // Before client-final there is nothing to compare with.
    assert!(matches!(
        c.verify_server_final(b"v="),
        Err(SaslError::Other(_))
    ));
    assert!(c.client_final(RFC5802_SERVER_FIRST.as_bytes()).is_err());
    c.client_first();
    c.client_final(RFC5802_SERVER_FIRST.as_bytes()).unwrap();
    assert!(matches!(
        c.verify_server_final(b"v="),
        Err(SaslError::NotAuthorized)
    ));
    assert!(matches!(
        c.verify_server_final(b"e=invalid-proof"),
        Err(SaslError::Other(_))
    ));
    assert!(matches!(
        c.verify_server_final(b"x=1"),
        Err(SaslError::MalformedRequest(_))
    ));
    assert!(matches!(
        c.verify_server_final(b"v=***"),
        Err(SaslError::MalformedRequest(_))
    ));
    c.verify_server_final(format!("{RFC5802_SERVER_FINAL},x=ext").as_bytes())
        .unwrap();
}

// --- names and errors -------------------------------------------------------------------

#[test]
fn names() {
    for hash in [HashAlgo::Sha1, HashAlgo::Sha256] {
        assert_eq!(HashAlgo::from_name(hash.name()), Some(hash));
        for plus in [false, true] {
            assert_eq!(
                parse_mechanism(mechanism_name(hash, plus)),
                Some((hash, plus))
            );
        }
    }
    assert_eq!(HashAlgo::Sha1.name(), "SHA-1");
    assert_eq!(HashAlgo::Sha256.name(), "SHA-256");
    assert_eq!(HashAlgo::from_name("SHA-512"), None);
    assert_eq!(mechanism_name(HashAlgo::Sha1, false), "SCRAM-SHA-1");
    assert_eq!(mechanism_name(HashAlgo::Sha256, true), "SCRAM-SHA-256-PLUS");
    assert_eq!(parse_mechanism("PLAIN"), None);
    assert_eq!(parse_mechanism("SCRAM-SHA-512"), None);
    assert_eq!(CbType::TlsExporter.name(), "tls-exporter");
    assert_eq!(CbType::TlsServerEndPoint.name(), "tls-server-end-point");
    assert_eq!(CbType::from_name("tls-unique"), None);
    assert_eq!(CbType::from_name("tls-exporter"), Some(CbType::TlsExporter));
}

#[test]
fn error_conditions() {
    assert_eq!(
        SaslError::MalformedRequest("x".into()).condition(),
        "malformed-request"
    );
    assert_eq!(SaslError::NotAuthorized.condition(), "not-authorized");
    assert_eq!(
        SaslError::InvalidAuthzid("x".into()).condition(),
        "invalid-authzid"
    );
    assert_eq!(
        SaslError::ChannelBinding("x".into()).condition(),
        "not-authorized"
    );
    assert_eq!(
        SaslError::Other("x".into()).condition(),
        "temporary-auth-failure"
    );
    assert_eq!(SaslError::NotAuthorized.to_string(), "not authorized");
    assert_eq!(
        SaslError::ChannelBinding("no".into()).to_string(),
        "channel binding: no"
    );
}

// --- stored keys ------------------------------------------------------------------------

#[test]
fn derived_keys_match_the_rfc_example() {
    // RFC 5802 example: SaltedPassword, ClientKey etc. lead to the proof tested above;
    // here check the shape of what is stored.
    let k = rfc_keys(HashAlgo::Sha1, "QSXCR+Q6sek8bf92");
    assert_eq!(k.stored_key.len(), 20);
    assert_eq!(k.server_key.len(), 20);
    assert_eq!(k.iterations, 4096);
    assert_eq!(k.salt, B64.decode("QSXCR+Q6sek8bf92").unwrap());
    let k = rfc_keys(HashAlgo::Sha256, "W22ZaJ0SNY7soEsUEjb6gQ==");
    assert_eq!(k.stored_key.len(), 32);
    assert_eq!(k.server_key.len(), 32);
}

#[test]
fn generated_keys_use_fresh_salts() {
    let a = pencil(HashAlgo::Sha1);
    let b = pencil(HashAlgo::Sha1);
    assert_eq!(a.salt.len(), SALT_LEN);
    assert_ne!(a.salt, b.salt);
    assert_ne!(a.stored_key, b.stored_key);
}

#[test]
fn derive_rejects_bad_input() {
    assert!(ScramKeys::derive(HashAlgo::Sha1, "pencil", b"salt", 0).is_err());
    // U+0007 is a prohibited control character.
    assert!(matches!(
        ScramKeys::derive(HashAlgo::Sha1, "pen\u{7}cil", b"salt", 4096),
        Err(SaslError::MalformedRequest(_))
    ));
}

#[test]
fn plain_passwords_are_checked_against_scram_keys() {
    for hash in [HashAlgo::Sha1, HashAlgo::Sha256] {
        let k = pencil(hash);
        assert!(k.verify_password("pencil"));
        assert!(!k.verify_password("crayon"));
        assert!(!k.verify_password(""));
        assert!(!k.verify_password("pen\u{7}cil"));
    }
    // SASLprep equivalence (RFC 4013 §3): soft hyphen is dropped, U+00A0 is a space.
    let k = ScramKeys::generate(HashAlgo::Sha256, "I\u{ad}X", 4096).unwrap();
    assert!(k.verify_password("IX"));
    let k = ScramKeys::generate(HashAlgo::Sha256, "a b", 4096).unwrap();
    assert!(k.verify_password("a\u{a0}b"));
}

// --- PLAIN ------------------------------------------------------------------------------

#[test]
fn plain_messages_parse() {
    assert_eq!(
        parse_plain(b"\0alice\0secret").unwrap(),
        (None, "alice".to_owned(), "secret".to_owned())
    );
    assert_eq!(
        parse_plain(b"alice@example.com\0alice\0s e c r e t").unwrap(),
        (
            Some("alice@example.com".to_owned()),
            "alice".to_owned(),
            "s e c r e t".to_owned()
        )
    );
    assert_eq!(
        parse_plain(&plain_message(Some("alice@x"), "alice", "pw")).unwrap(),
        (
            Some("alice@x".to_owned()),
            "alice".to_owned(),
            "pw".to_owned()
        )
    );
    assert_eq!(plain_message(None, "alice", "pw"), b"\0alice\0pw");
    assert_eq!(
        parse_plain("\0jürgen\0pässwörd".as_bytes()).unwrap().2,
        "pässwörd"
    );
}

#[test]
fn plain_edge_cases_are_refused() {
    let long = "x".repeat(MAX_PLAIN_FIELD + 1);
    let max = "x".repeat(MAX_PLAIN_FIELD);
    for bad in [
        b"".to_vec(),
        b"alice".to_vec(),
        b"alice\0secret".to_vec(),
        b"\0\0secret".to_vec(),
        b"\0alice\0".to_vec(),
        b"\0\0".to_vec(),
        b"\0al\0ice\0pw".to_vec(),
        b"\0alice\0pw\0".to_vec(),
        b"\0\xffalice\0pw".to_vec(),
        b"\0alice\0p\xffw".to_vec(),
        b"\xff\0alice\0pw".to_vec(),
        plain_message(None, &long, "pw"),
        plain_message(None, "alice", &long),
        plain_message(Some(&long), "alice", "pw"),
    ] {
        let err = parse_plain(&bad).unwrap_err();
        assert!(matches!(err, SaslError::MalformedRequest(_)), "{bad:?}");
    }
    assert!(parse_plain(&plain_message(Some(&max), &max, &max)).is_ok());
}

#[test]
fn debug_output_hides_secrets() {
    let c = ScramClient::new(HashAlgo::Sha1, "user", "hunter2", None);
    assert!(!format!("{c:?}").contains("hunter2"));
    let srv = ScramServer::new(HashAlgo::Sha1, true, true, bindings());
    assert!(format!("{srv:?}").contains("SCRAM-SHA-1-PLUS"));
}
