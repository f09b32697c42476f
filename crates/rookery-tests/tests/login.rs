//! Logging in: every SASL mechanism, both TLS modes, and the ways it must fail.

use rookery_client::{Client, ClientError, Security};
use rookery_tests::TestServer;

async fn server_with_alice() -> TestServer {
    let s = TestServer::start().await;
    s.add_user("alice@localhost", "wonderland").await;
    s
}

#[tokio::test]
async fn alice_logs_in_with_each_mechanism_over_starttls() {
    let s = server_with_alice().await;
    for mech in [
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "PLAIN",
    ] {
        let mut c = s.client_config("alice@localhost", "wonderland");
        c.mechanism = Some(mech.into());
        let client = Client::connect(c)
            .await
            .unwrap_or_else(|e| panic!("{mech}: {e}"));
        assert_eq!(client.mechanism(), mech);
        assert!(
            client.jid().starts_with("alice@localhost/"),
            "{}",
            client.jid()
        );
        client.close().await.unwrap();
    }
}

#[tokio::test]
async fn alice_logs_in_over_direct_tls() {
    let s = server_with_alice().await;
    let mut c = s.client_config("alice@localhost", "wonderland");
    c.addr = s.c2s_tls;
    c.security = Security::DirectTls;
    let client = Client::connect(c).await.expect("direct TLS login");
    assert_eq!(client.mechanism(), "SCRAM-SHA-256-PLUS");
}

#[tokio::test]
async fn the_server_generates_a_resource_when_none_is_asked_for() {
    let s = server_with_alice().await;
    let c = Client::connect(s.client_config("alice@localhost", "wonderland"))
        .await
        .unwrap();
    let resource = c.jid().split_once('/').unwrap().1.to_owned();
    assert!(resource.len() >= 8, "generated resource {resource:?}");
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_not_authorized() {
    let s = server_with_alice().await;
    for mech in ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1", "PLAIN"] {
        let mut c = s.client_config("alice@localhost", "looking-glass");
        c.mechanism = Some(mech.into());
        match Client::authenticate_only(c).await {
            Err(ClientError::Auth { condition, text }) => {
                assert_eq!(condition, "not-authorized", "{mech}");
                assert!(!text.is_empty(), "a failure explains itself");
            }
            other => panic!("{mech}: expected an auth failure, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_unknown_user_looks_the_same_as_a_wrong_password() {
    let s = server_with_alice().await;
    let c = s.client_config("mallory@localhost", "wonderland");
    match Client::authenticate_only(c).await {
        Err(ClientError::Auth { condition, .. }) => assert_eq!(condition, "not-authorized"),
        other => panic!("expected an auth failure, got {other:?}"),
    }
}

#[tokio::test]
async fn plaintext_is_refused_unless_allowed_on_loopback() {
    let s = server_with_alice().await;
    let mut c = s.client_config("alice@localhost", "wonderland");
    c.security = Security::Plain;
    let err = Client::authenticate_only(c).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Stream { condition, .. } if condition == "policy-violation")
            || matches!(&err, ClientError::Protocol(_)),
        "{err:?}"
    );

    let s = TestServer::start_with(|c| c.auth.allow_plaintext_on_loopback = true).await;
    s.add_user("alice@localhost", "wonderland").await;
    let mut c = s.client_config("alice@localhost", "wonderland");
    c.security = Security::Plain;
    let client = Client::connect(c)
        .await
        .expect("plaintext login on loopback");
    assert_eq!(
        client.mechanism(),
        "SCRAM-SHA-256",
        "no -PLUS and no PLAIN without TLS"
    );
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_rate_limited() {
    let s = TestServer::start_with(|c| c.limits.auth_failures_per_minute = 2).await;
    s.add_user("alice@localhost", "wonderland").await;
    let mut conditions = Vec::new();
    for _ in 0..4 {
        let mut c = s.client_config("alice@localhost", "nope");
        c.mechanism = Some("SCRAM-SHA-256".into());
        match Client::authenticate_only(c).await {
            Err(ClientError::Auth { condition, .. }) => conditions.push(condition),
            Err(ClientError::Stream { condition, .. }) => conditions.push(condition),
            other => panic!("expected failure, got {other:?}"),
        }
    }
    assert!(
        conditions
            .iter()
            .any(|c| c == "temporary-auth-failure" || c == "policy-violation"),
        "{conditions:?}"
    );
    // Even the right password is refused while the address is limited.
    let c = s.client_config("alice@localhost", "wonderland");
    assert!(Client::authenticate_only(c).await.is_err());
}

#[tokio::test]
async fn a_second_login_with_the_same_resource_replaces_the_first() {
    let s = server_with_alice().await;
    let mut first = s.login("alice@localhost", "wonderland", "phone").await;
    let _second = s.login("alice@localhost", "wonderland", "phone").await;
    match first.recv().await {
        Err(ClientError::Stream { condition, .. }) => assert_eq!(condition, "conflict"),
        other => panic!("expected a conflict stream error, got {other:?}"),
    }
}
