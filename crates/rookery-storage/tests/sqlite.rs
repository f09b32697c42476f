//! The SQLite backend against real database files in a temporary directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use rookery_storage::sqlite::SqliteStore;
use rookery_storage::{
    AccountStore, BlocklistStore, Credential, LastActivityStore, OfflineStore, RosterItem,
    RosterStore, StoreError, Subscription, UserDataStore, now_us,
};
use tempfile::TempDir;

const HOST: &str = "example.org";

fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("rookery.sqlite")
}

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path).await.expect("open store")
}

fn cred(hash: &str, fill: u8) -> Credential {
    Credential {
        hash: hash.to_owned(),
        salt: vec![fill; 16],
        iterations: 4096,
        stored_key: vec![fill.wrapping_add(1); 32],
        server_key: vec![fill.wrapping_add(2); 32],
    }
}

fn contact(jid: &str) -> RosterItem {
    RosterItem {
        contact: jid.to_owned(),
        in_roster: true,
        ..Default::default()
    }
}

fn jids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn accounts_are_created_once_and_carry_their_credentials() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir)).await;

    // Alice registers with both SCRAM variants.
    let creds = [cred("SHA-1", 1), cred("SHA-256", 7)];
    assert!(store.create_account(HOST, "alice", &creds).await.unwrap());
    assert!(store.account_exists(HOST, "alice").await.unwrap());
    assert_eq!(
        store.credential(HOST, "alice", "SHA-256").await.unwrap(),
        Some(creds[1].clone())
    );
    assert_eq!(
        store.credential(HOST, "alice", "SHA-1").await.unwrap(),
        Some(creds[0].clone())
    );
    assert_eq!(
        store.credential(HOST, "alice", "SHA-512").await.unwrap(),
        None
    );

    // Somebody else tries to take the name: refused, her credentials stay.
    assert!(
        !store
            .create_account(HOST, "alice", &[cred("SHA-256", 99)])
            .await
            .unwrap()
    );
    assert_eq!(
        store.credential(HOST, "alice", "SHA-256").await.unwrap(),
        Some(creds[1].clone())
    );

    // The same localpart on another domain is another account.
    assert!(
        !store
            .account_exists("other.example", "alice")
            .await
            .unwrap()
    );
    assert!(
        store
            .create_account("other.example", "alice", &[])
            .await
            .unwrap()
    );

    // She changes her password; only SHA-256 this time, so SHA-1 is gone.
    let new = cred("SHA-256", 42);
    assert!(
        store
            .set_credentials(HOST, "alice", std::slice::from_ref(&new))
            .await
            .unwrap()
    );
    assert_eq!(
        store.credential(HOST, "alice", "SHA-256").await.unwrap(),
        Some(new)
    );
    assert_eq!(
        store.credential(HOST, "alice", "SHA-1").await.unwrap(),
        None
    );

    // Nobody can set a password for an account that does not exist.
    assert!(
        !store
            .set_credentials(HOST, "mallory", &creds)
            .await
            .unwrap()
    );
    assert!(!store.account_exists(HOST, "mallory").await.unwrap());

    // Two credentials for one hash are refused, and nothing is created.
    let err = store
        .create_account(HOST, "carol", &[cred("SHA-1", 1), cred("SHA-1", 2)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert!(!store.account_exists(HOST, "carol").await.unwrap());

    // The extremes of the iteration count survive the round trip.
    let mut big = cred("SHA-256", 3);
    big.iterations = u32::MAX;
    assert!(
        store
            .create_account(HOST, "dave", std::slice::from_ref(&big))
            .await
            .unwrap()
    );
    assert_eq!(
        store.credential(HOST, "dave", "SHA-256").await.unwrap(),
        Some(big)
    );
}

#[tokio::test]
async fn accounts_are_listed_sorted_and_counted_per_host() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir)).await;
    assert_eq!(store.count_accounts(HOST).await.unwrap(), 0);
    assert!(store.list_accounts(HOST).await.unwrap().is_empty());

    for user in ["zoe", "bob", "alice", "émile", "Bob"] {
        assert!(store.create_account(HOST, user, &[]).await.unwrap());
    }
    store
        .create_account("elsewhere.example", "aaron", &[])
        .await
        .unwrap();

    assert_eq!(
        store.list_accounts(HOST).await.unwrap(),
        jids(&["Bob", "alice", "bob", "zoe", "émile"])
    );
    assert_eq!(store.count_accounts(HOST).await.unwrap(), 5);
    assert_eq!(store.count_accounts("elsewhere.example").await.unwrap(), 1);
}

#[tokio::test]
async fn deleting_an_account_removes_all_its_data_and_nothing_else() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir)).await;

    // Alice and Bob both have data everywhere.
    for user in ["alice", "bob"] {
        store
            .create_account(HOST, user, &[cred("SHA-256", 1)])
            .await
            .unwrap();
        store
            .put_roster_item(HOST, user, &contact("carol@example.net"))
            .await
            .unwrap();
        store
            .push_offline(HOST, user, 1, "<message/>", 100)
            .await
            .unwrap();
        store
            .put_user_data(HOST, user, "vcard", "", "<vCard/>")
            .await
            .unwrap();
        store
            .block(HOST, user, &jids(&["spam@example.com"]))
            .await
            .unwrap();
        store
            .record_last_activity(&[ended(user, 5, "gone")])
            .await
            .unwrap();
    }
    let version_before = store.roster_version(HOST, "alice").await.unwrap();

    // Alice leaves.
    assert!(store.delete_account(HOST, "alice").await.unwrap());

    assert!(!store.account_exists(HOST, "alice").await.unwrap());
    assert_eq!(
        store.credential(HOST, "alice", "SHA-256").await.unwrap(),
        None
    );
    assert!(store.roster(HOST, "alice").await.unwrap().1.is_empty());
    assert_eq!(store.count_offline(HOST, "alice").await.unwrap(), 0);
    assert_eq!(
        store
            .get_user_data(HOST, "alice", "vcard", "")
            .await
            .unwrap(),
        None
    );
    assert!(store.blocklist(HOST, "alice").await.unwrap().is_empty());
    assert_eq!(store.last_activity(HOST, "alice").await.unwrap(), None);

    // Bob keeps everything.
    assert!(store.account_exists(HOST, "bob").await.unwrap());
    assert!(
        store
            .credential(HOST, "bob", "SHA-256")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.roster(HOST, "bob").await.unwrap().1.len(), 1);
    assert_eq!(store.count_offline(HOST, "bob").await.unwrap(), 1);
    assert!(
        store
            .get_user_data(HOST, "bob", "vcard", "")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.blocklist(HOST, "bob").await.unwrap().len(), 1);
    assert!(store.last_activity(HOST, "bob").await.unwrap().is_some());

    // Deleting her again reports there was nothing.
    assert!(!store.delete_account(HOST, "alice").await.unwrap());

    // When she re-registers, her roster is empty, and a client that cached
    // the old roster version can never mistake it for the new one.
    assert!(store.create_account(HOST, "alice", &[]).await.unwrap());
    let v = store
        .put_roster_item(HOST, "alice", &contact("dan@example.net"))
        .await
        .unwrap();
    assert!(v > version_before);
}

#[tokio::test]
async fn roster_versions_only_grow_even_across_restarts() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let store = open(&path).await;

    // A fresh roster is empty at version 0.
    assert_eq!(store.roster(HOST, "alice").await.unwrap(), (0, vec![]));
    assert_eq!(store.roster_version(HOST, "alice").await.unwrap(), 0);

    // Alice adds Bob, with a name and groups.
    let mut bob = RosterItem {
        contact: "bob@example.net".into(),
        name: Some("Bobby".into()),
        groups: jids(&["Friends", "Chess club"]),
        subscription: Subscription::None,
        ask_out: true,
        in_roster: true,
        ..Default::default()
    };
    assert_eq!(store.put_roster_item(HOST, "alice", &bob).await.unwrap(), 1);
    assert_eq!(
        store
            .roster_item(HOST, "alice", "bob@example.net")
            .await
            .unwrap(),
        Some(bob.clone())
    );

    // Bob accepts: the item is replaced, the version moves on.
    bob.subscription = Subscription::To;
    bob.ask_out = false;
    bob.name = None;
    assert_eq!(store.put_roster_item(HOST, "alice", &bob).await.unwrap(), 2);
    assert_eq!(
        store
            .roster_item(HOST, "alice", "bob@example.net")
            .await
            .unwrap(),
        Some(bob.clone())
    );

    // Carol, then removing her.
    assert_eq!(
        store
            .put_roster_item(HOST, "alice", &contact("carol@example.net"))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .remove_roster_item(HOST, "alice", "carol@example.net")
            .await
            .unwrap(),
        (4, true)
    );
    // Removing somebody who is not there changes nothing.
    assert_eq!(
        store
            .remove_roster_item(HOST, "alice", "nobody@example.net")
            .await
            .unwrap(),
        (4, false)
    );
    // Other users have their own counter.
    assert_eq!(store.roster_version(HOST, "bob").await.unwrap(), 0);

    // The server restarts.
    store.close().await;
    let store = open(&path).await;
    assert_eq!(
        store.roster(HOST, "alice").await.unwrap(),
        (4, vec![bob.clone()])
    );

    // Even when the roster became empty, the next version is a new one.
    assert_eq!(
        store
            .remove_roster_item(HOST, "alice", "bob@example.net")
            .await
            .unwrap(),
        (5, true)
    );
    store.close().await;
    let store = open(&path).await;
    assert_eq!(store.roster(HOST, "alice").await.unwrap(), (5, vec![]));
    assert_eq!(store.put_roster_item(HOST, "alice", &bob).await.unwrap(), 6);
}

#[tokio::test]
async fn roster_items_come_sorted_and_groups_are_validated() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir)).await;
    for jid in ["zed@example.net", "amy@example.net", "kim@example.net"] {
        store
            .put_roster_item(HOST, "alice", &contact(jid))
            .await
            .unwrap();
    }
    let (version, items) = store.roster(HOST, "alice").await.unwrap();
    assert_eq!(version, 3);
    let order: Vec<_> = items.iter().map(|i| i.contact.as_str()).collect();
    assert_eq!(
        order,
        ["amy@example.net", "kim@example.net", "zed@example.net"]
    );

    // A group name with a newline cannot be stored; nothing changes.
    let mut bad = contact("bad@example.net");
    bad.groups = jids(&["Line one\nLine two"]);
    let err = store
        .put_roster_item(HOST, "alice", &bad)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    bad.groups = jids(&[""]);
    let err = store
        .put_roster_item(HOST, "alice", &bad)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(
        store
            .roster_item(HOST, "alice", "bad@example.net")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.roster_version(HOST, "alice").await.unwrap(), 3);
}

#[tokio::test]
async fn pending_subscription_requests_survive_a_restart() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let store = open(&path).await;

    // A stranger asks Alice for a subscription while she is offline: the
    // request is remembered in an entry that is not part of her roster.
    let request = RosterItem {
        contact: "stranger@example.com".into(),
        pending_in: true,
        in_roster: false,
        ..Default::default()
    };
    store
        .put_roster_item(HOST, "alice", &request)
        .await
        .unwrap();
    // Alice pre-approves Bob, whom she has not added either.
    let approval = RosterItem {
        contact: "bob@example.net".into(),
        approved: true,
        in_roster: false,
        ..Default::default()
    };
    store
        .put_roster_item(HOST, "alice", &approval)
        .await
        .unwrap();
    // And has Carol in her roster, with Carol's request pending too.
    let carol = RosterItem {
        contact: "carol@example.net".into(),
        subscription: Subscription::To,
        pending_in: true,
        in_roster: true,
        ..Default::default()
    };
    store.put_roster_item(HOST, "alice", &carol).await.unwrap();

    store.close().await;
    let store = open(&path).await;

    // Everything is still there, hidden entries included; the caller filters.
    let (version, items) = store.roster(HOST, "alice").await.unwrap();
    assert_eq!(version, 3);
    assert_eq!(items, vec![approval, carol, request.clone()]);
    assert_eq!(
        store
            .roster_item(HOST, "alice", "stranger@example.com")
            .await
            .unwrap(),
        Some(request)
    );
}

#[tokio::test]
async fn offline_messages_keep_order_respect_the_quota_and_delete_up_to_an_id() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir)).await;

    // Three messages arrive for Alice; her quota is three.
    for (i, body) in ["one", "two", "three"].into_iter().enumerate() {
        let stanza = format!("<message><body>{body}</body></message>");
        assert!(
            store
                .push_offline(HOST, "alice", 100 + i as i64, &stanza, 3)
                .await
                .unwrap()
        );
    }
    // The fourth is refused and not stored.
    assert!(
        !store
            .push_offline(HOST, "alice", 200, "<message>four</message>", 3)
            .await
            .unwrap()
    );
    assert_eq!(store.count_offline(HOST, "alice").await.unwrap(), 3);
    // Bob's quota is his own.
    assert!(
        store
            .push_offline(HOST, "bob", 1, "<message/>", 3)
            .await
            .unwrap()
    );
    // A quota of zero stores nothing.
    assert!(
        !store
            .push_offline(HOST, "carol", 1, "<message/>", 0)
            .await
            .unwrap()
    );

    let messages = store.offline_messages(HOST, "alice").await.unwrap();
    let bodies: Vec<_> = messages.iter().map(|m| m.stanza.as_str()).collect();
    assert_eq!(
        bodies,
        [
            "<message><body>one</body></message>",
            "<message><body>two</body></message>",
            "<message><body>three</body></message>"
        ]
    );
    assert_eq!(
        messages.iter().map(|m| m.stamp_us).collect::<Vec<_>>(),
        [100, 101, 102]
    );
    assert!(messages.windows(2).all(|w| w[0].id < w[1].id));

    // Alice comes online and is sent the first two; meanwhile another arrives.
    let delivered = messages[1].id;
    assert!(
        store
            .push_offline(HOST, "alice", 300, "<message>late</message>", 10)
            .await
            .unwrap()
    );
    store
        .delete_offline(HOST, "alice", delivered)
        .await
        .unwrap();

    let left = store.offline_messages(HOST, "alice").await.unwrap();
    let bodies: Vec<_> = left.iter().map(|m| m.stanza.as_str()).collect();
    assert_eq!(
        bodies,
        [
            "<message><body>three</body></message>",
            "<message>late</message>"
        ]
    );
    // Bob's message is untouched, even though its id is below Alice's.
    assert_eq!(store.count_offline(HOST, "bob").await.unwrap(), 1);

    // Deleting everything up to the newest id empties the queue; new ids are
    // never reused.
    let last = left.last().unwrap().id;
    store.delete_offline(HOST, "alice", last).await.unwrap();
    assert_eq!(store.count_offline(HOST, "alice").await.unwrap(), 0);
    store
        .push_offline(HOST, "alice", 400, "<message/>", 3)
        .await
        .unwrap();
    assert!(store.offline_messages(HOST, "alice").await.unwrap()[0].id > last);
}

#[tokio::test]
async fn user_data_is_put_read_overwritten_and_deleted() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir)).await;

    assert_eq!(
        store
            .get_user_data(HOST, "alice", "vcard", "")
            .await
            .unwrap(),
        None
    );

    store
        .put_user_data(HOST, "alice", "vcard", "", "<vCard><FN>Alice</FN></vCard>")
        .await
        .unwrap();
    store
        .put_user_data(
            HOST,
            "alice",
            "private",
            "{storage:bookmarks} storage",
            "<storage/>",
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_user_data(HOST, "alice", "vcard", "")
            .await
            .unwrap()
            .as_deref(),
        Some("<vCard><FN>Alice</FN></vCard>")
    );

    // Overwriting replaces just that document.
    store
        .put_user_data(
            HOST,
            "alice",
            "vcard",
            "",
            "<vCard><FN>Alice A.</FN></vCard>",
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_user_data(HOST, "alice", "vcard", "")
            .await
            .unwrap()
            .as_deref(),
        Some("<vCard><FN>Alice A.</FN></vCard>")
    );
    assert_eq!(
        store
            .get_user_data(HOST, "alice", "private", "{storage:bookmarks} storage")
            .await
            .unwrap()
            .as_deref(),
        Some("<storage/>")
    );
    // Bob has no vCard.
    assert_eq!(
        store.get_user_data(HOST, "bob", "vcard", "").await.unwrap(),
        None
    );

    assert!(
        store
            .delete_user_data(HOST, "alice", "vcard", "")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_user_data(HOST, "alice", "vcard", "")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .get_user_data(HOST, "alice", "vcard", "")
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .get_user_data(HOST, "alice", "private", "{storage:bookmarks} storage")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn blocking_and_unblocking() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir)).await;

    assert!(store.blocklist(HOST, "alice").await.unwrap().is_empty());

    // Alice blocks two spammers; the duplicate in her request counts once.
    let added = store
        .block(
            HOST,
            "alice",
            &jids(&[
                "spam2@example.com",
                "spam1@example.com",
                "spam2@example.com",
            ]),
        )
        .await
        .unwrap();
    assert_eq!(added, jids(&["spam2@example.com", "spam1@example.com"]));

    // Blocking again is harmless and reports only what is new.
    let added = store
        .block(
            HOST,
            "alice",
            &jids(&["spam1@example.com", "troll@example.com"]),
        )
        .await
        .unwrap();
    assert_eq!(added, jids(&["troll@example.com"]));
    assert_eq!(
        store.blocklist(HOST, "alice").await.unwrap(),
        jids(&[
            "spam1@example.com",
            "spam2@example.com",
            "troll@example.com"
        ])
    );
    assert!(store.block(HOST, "alice", &[]).await.unwrap().is_empty());

    // She forgives the troll (and somebody she never blocked).
    let removed = store
        .unblock(
            HOST,
            "alice",
            &jids(&["troll@example.com", "friend@example.com"]),
        )
        .await
        .unwrap();
    assert_eq!(removed, jids(&["troll@example.com"]));

    // Bob's list is separate.
    store
        .block(HOST, "bob", &jids(&["spam1@example.com"]))
        .await
        .unwrap();

    // An empty unblock clears her whole list.
    let removed = store.unblock(HOST, "alice", &[]).await.unwrap();
    assert_eq!(removed, jids(&["spam1@example.com", "spam2@example.com"]));
    assert!(store.blocklist(HOST, "alice").await.unwrap().is_empty());
    assert!(store.unblock(HOST, "alice", &[]).await.unwrap().is_empty());
    assert_eq!(
        store.blocklist(HOST, "bob").await.unwrap(),
        jids(&["spam1@example.com"])
    );
}

/// The end of `user`'s last session at `HOST`, as the server records it.
fn ended(user: &str, stamp_us: i64, status: &str) -> (String, String, i64, String) {
    (HOST.into(), user.into(), stamp_us, status.into())
}

#[tokio::test]
async fn last_activity_is_remembered_and_replaced_for_accounts_only() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir)).await;
    for user in ["alice", "bob"] {
        assert!(store.create_account(HOST, user, &[]).await.unwrap());
    }

    assert_eq!(store.last_activity(HOST, "alice").await.unwrap(), None);
    let then = now_us();
    // One batch: alice and bob left; so did someone whose account is already gone.
    store
        .record_last_activity(&[
            ended("alice", then, "Gone fishing"),
            ended("ghost", then, "boo"),
            ended("bob", then - 5, ""),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.last_activity(HOST, "alice").await.unwrap(),
        Some((then, "Gone fishing".to_owned()))
    );
    assert_eq!(
        store.last_activity(HOST, "bob").await.unwrap(),
        Some((then - 5, String::new()))
    );
    assert_eq!(store.last_activity(HOST, "ghost").await.unwrap(), None);

    store
        .record_last_activity(&[ended("alice", then + 1_000_000, "")])
        .await
        .unwrap();
    assert_eq!(
        store.last_activity(HOST, "alice").await.unwrap(),
        Some((then + 1_000_000, String::new()))
    );
    assert_eq!(
        store.last_activity(HOST, "bob").await.unwrap(),
        Some((then - 5, String::new())),
        "a later batch leaves the others as they were"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_and_admin_cli_share_the_file() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let server = open(&path).await;
    let cli = open(&path).await;

    // The admin creates an account; the server sees it at once.
    assert!(
        cli.create_account(HOST, "alice", &[cred("SHA-256", 1)])
            .await
            .unwrap()
    );
    assert!(server.account_exists(HOST, "alice").await.unwrap());

    // The server stores a message and a roster change; the CLI sees them.
    server
        .push_offline(HOST, "alice", 1, "<message/>", 10)
        .await
        .unwrap();
    server
        .put_roster_item(HOST, "alice", &contact("bob@example.net"))
        .await
        .unwrap();
    assert_eq!(cli.count_offline(HOST, "alice").await.unwrap(), 1);
    assert_eq!(cli.roster_version(HOST, "alice").await.unwrap(), 1);

    // Both write at once; every write lands, every version is distinct.
    let server = Arc::new(server);
    let cli = Arc::new(cli);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 {
            server.clone()
        } else {
            cli.clone()
        };
        tasks.push(tokio::spawn(async move {
            store
                .put_roster_item(HOST, "alice", &contact(&format!("c{i}@example.net")))
                .await
                .unwrap()
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=21).collect::<Vec<u64>>());
    assert_eq!(server.roster(HOST, "alice").await.unwrap().1.len(), 21);

    // The admin deletes the account; the server sees it gone.
    assert!(cli.delete_account(HOST, "alice").await.unwrap());
    assert!(!server.account_exists(HOST, "alice").await.unwrap());
    assert_eq!(server.count_offline(HOST, "alice").await.unwrap(), 0);
}

#[tokio::test]
async fn a_write_is_visible_to_a_fresh_handle_as_soon_as_it_returns() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let writer = open(&path).await;
    writer.create_account(HOST, "alice", &[]).await.unwrap();
    writer
        .put_user_data(HOST, "alice", "vcard", "", "<vCard/>")
        .await
        .unwrap();

    // Without closing the writer, another handle opens the file.
    let reader = open(&path).await;
    assert!(reader.account_exists(HOST, "alice").await.unwrap());
    assert_eq!(
        reader
            .get_user_data(HOST, "alice", "vcard", "")
            .await
            .unwrap()
            .as_deref(),
        Some("<vCard/>")
    );
}

/// Set for the child process of `writes_survive_the_process_being_killed`.
const CHILD_DB_ENV: &str = "ROOKERY_STORAGE_KILLED_WRITER_DB";
const CHILD_READY: &str = "ROOKERY-STORAGE-WRITES-RETURNED";

/// Runs only as the child of `writes_survive_the_process_being_killed`:
/// writes, reports that the writes returned, then waits to be killed.
#[tokio::test]
async fn killed_writer_child() {
    let Some(path) = std::env::var_os(CHILD_DB_ENV) else {
        return;
    };
    let store = open(Path::new(&path)).await;
    store
        .create_account(HOST, "alice", &[cred("SHA-256", 9)])
        .await
        .unwrap();
    store
        .put_roster_item(HOST, "alice", &contact("bob@example.net"))
        .await
        .unwrap();
    store
        .push_offline(HOST, "alice", 7, "<message>kept</message>", 10)
        .await
        .unwrap();
    println!("{CHILD_READY}");
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    panic!("the parent should have killed this process");
}

#[tokio::test]
async fn writes_survive_the_process_being_killed() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "killed_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
            .any(|l| l.contains(CHILD_READY))
    });
    let ready = tokio::time::timeout(std::time::Duration::from_secs(60), ready).await;
    // SIGKILL: no destructors, no checkpoint, no clean close.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        matches!(ready, Ok(Ok(true))),
        "child never reported its writes"
    );

    let store = open(&path).await;
    assert_eq!(
        store.credential(HOST, "alice", "SHA-256").await.unwrap(),
        Some(cred("SHA-256", 9))
    );
    assert_eq!(
        store.roster(HOST, "alice").await.unwrap(),
        (1, vec![contact("bob@example.net")])
    );
    let messages = store.offline_messages(HOST, "alice").await.unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].stanza, "<message>kept</message>");
}

#[tokio::test]
async fn the_file_is_created_in_wal_mode_and_reopens_cleanly() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("sub dir with spaces & #hash");
    std::fs::create_dir(&path).unwrap();
    let path = path.join("data.sqlite");
    assert!(!path.exists());
    let store = open(&path).await;
    store.create_account(HOST, "alice", &[]).await.unwrap();
    assert!(path.exists());
    // WAL mode leaves a -wal file next to the database while it is open.
    assert!(
        dir.path()
            .join("sub dir with spaces & #hash/data.sqlite-wal")
            .exists()
    );
    store.close().await;

    // Migrations are not re-applied to an up-to-date file.
    let store = open(&path).await;
    assert!(store.account_exists(HOST, "alice").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_handles_can_open_a_new_file_at_the_same_moment() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let (a, b, c) = tokio::join!(
        SqliteStore::open(&path),
        SqliteStore::open(&path),
        SqliteStore::open(&path)
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert!(a.create_account(HOST, "alice", &[]).await.unwrap());
    assert!(!b.create_account(HOST, "alice", &[]).await.unwrap());
    assert_eq!(c.list_accounts(HOST).await.unwrap(), jids(&["alice"]));
}

#[tokio::test]
async fn opening_fails_cleanly_when_the_directory_is_missing() {
    let dir = TempDir::new().unwrap();
    let err = SqliteStore::open(&dir.path().join("missing/rookery.sqlite"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
}

#[tokio::test]
async fn in_memory_stores_are_separate_and_work_through_the_trait_objects() {
    let one = SqliteStore::open_memory().await.unwrap().into_stores();
    let two = SqliteStore::open_memory().await.unwrap().into_stores();
    assert!(
        one.accounts
            .create_account(HOST, "alice", &[])
            .await
            .unwrap()
    );
    assert!(!two.accounts.account_exists(HOST, "alice").await.unwrap());
    assert_eq!(
        one.roster
            .put_roster_item(HOST, "alice", &contact("bob@example.net"))
            .await
            .unwrap(),
        1
    );
    assert!(
        one.offline
            .push_offline(HOST, "alice", 1, "<message/>", 1)
            .await
            .unwrap()
    );
    one.user_data
        .put_user_data(HOST, "alice", "vcard", "", "<vCard/>")
        .await
        .unwrap();
    one.blocklist
        .block(HOST, "alice", &jids(&["x@example.com"]))
        .await
        .unwrap();
    one.last_activity
        .record_last_activity(&[ended("alice", 1, "")])
        .await
        .unwrap();
    assert!(one.accounts.delete_account(HOST, "alice").await.unwrap());
    assert_eq!(one.offline.count_offline(HOST, "alice").await.unwrap(), 0);
}

#[tokio::test]
async fn a_disabled_account_keeps_its_data_and_its_state_survives_a_restart() {
    let dir = TempDir::new().unwrap();
    let store = open(&db_path(&dir)).await;
    store
        .create_account(HOST, "bob", &[cred("SHA-256", 3)])
        .await
        .unwrap();
    store
        .create_account(HOST, "amy", &[cred("SHA-256", 4)])
        .await
        .unwrap();
    assert!(!store.is_disabled(HOST, "bob").await.unwrap());
    assert_eq!(store.last_login(HOST, "bob").await.unwrap(), None);

    // An administrator disables bob; bob logged in once before.
    store
        .record_login(HOST, "bob", 1_700_000_000_000_000)
        .await
        .unwrap();
    assert!(store.set_disabled(HOST, "bob", true).await.unwrap());
    assert!(!store.set_disabled(HOST, "nobody", true).await.unwrap());
    store.close().await;

    let store = open(&db_path(&dir)).await;
    assert!(store.is_disabled(HOST, "bob").await.unwrap());
    assert!(!store.is_disabled(HOST, "amy").await.unwrap());
    assert!(!store.is_disabled(HOST, "nobody").await.unwrap());
    assert_eq!(store.disabled_accounts(HOST).await.unwrap(), jids(&["bob"]));
    assert!(
        store
            .credential(HOST, "bob", "SHA-256")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.last_login(HOST, "bob").await.unwrap(),
        Some(1_700_000_000_000_000)
    );

    // Re-enabled, bob is an ordinary account again.
    assert!(store.set_disabled(HOST, "bob", false).await.unwrap());
    assert!(store.disabled_accounts(HOST).await.unwrap().is_empty());
}

#[tokio::test]
async fn many_logins_are_recorded_in_one_go() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir)).await;
    let mut logins = Vec::new();
    for i in 0..650 {
        let user = format!("user{i}");
        store
            .create_account(HOST, &user, &[cred("SHA-256", 1)])
            .await
            .unwrap();
        logins.push((HOST.to_owned(), user, 1_700_000_000_000_000 + i));
    }
    // Someone who does not exist (deleted since the login) changes nothing.
    logins.push((HOST.to_owned(), "gone".to_owned(), 5));
    store.record_logins(&logins).await.unwrap();
    store.record_logins(&[]).await.unwrap();
    for i in [0, 299, 300, 649] {
        assert_eq!(
            store.last_login(HOST, &format!("user{i}")).await.unwrap(),
            Some(1_700_000_000_000_000 + i),
            "user{i}"
        );
    }
    assert_eq!(store.last_login(HOST, "gone").await.unwrap(), None);
    assert!(!store.account_exists(HOST, "gone").await.unwrap());
}

#[tokio::test]
async fn a_login_gets_the_credential_and_the_disabled_flag_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir)).await;
    store
        .create_account(HOST, "bob", &[cred("SHA-256", 3), cred("SHA-1", 4)])
        .await
        .unwrap();
    let (c, disabled) = store
        .login_credential(HOST, "bob", "SHA-1")
        .await
        .unwrap()
        .expect("bob has a SHA-1 credential");
    assert_eq!(c, cred("SHA-1", 4));
    assert!(!disabled);
    assert!(store.set_disabled(HOST, "bob", true).await.unwrap());
    let (c, disabled) = store
        .login_credential(HOST, "bob", "SHA-256")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c, cred("SHA-256", 3));
    assert!(disabled);
    assert_eq!(
        store
            .login_credential(HOST, "nobody", "SHA-1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .login_credential(HOST, "bob", "SHA-512")
            .await
            .unwrap(),
        None
    );
}
