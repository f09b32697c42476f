//! Shared groups on the SQLite backend, against a real database file.

use rookery_storage::sqlite::SqliteStore;
use rookery_storage::{Group, GroupStore, StoreError};
use tempfile::TempDir;

const HOST: &str = "example.org";
const OTHER: &str = "example.net";

async fn open(dir: &TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("rookery.sqlite"))
        .await
        .expect("open store")
}

fn jids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn group(host: &str, id: &str, name: &str, show: bool) -> Group {
    Group {
        host: host.into(),
        id: id.into(),
        name: name.into(),
        show_in_roster: show,
    }
}

#[tokio::test]
async fn groups_are_created_once_listed_sorted_changed_and_kept_per_host() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;

    assert!(
        store
            .create_group(HOST, "halls", "Halls", true)
            .await
            .unwrap()
    );
    assert!(
        store
            .create_group(HOST, "jury", "Jury", false)
            .await
            .unwrap()
    );
    assert!(
        store
            .create_group(HOST, "coaches", "Coaches", false)
            .await
            .unwrap()
    );
    // The id is taken: nothing changes.
    assert!(
        !store
            .create_group(HOST, "halls", "Other name", false)
            .await
            .unwrap()
    );
    assert_eq!(
        store.group(HOST, "halls").await.unwrap(),
        Some(group(HOST, "halls", "Halls", true))
    );
    let ids: Vec<String> = store
        .groups(HOST)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(ids, jids(&["coaches", "halls", "jury"]));

    // Another host has its own namespace.
    assert!(store.groups(OTHER).await.unwrap().is_empty());
    assert_eq!(store.group(OTHER, "halls").await.unwrap(), None);
    assert!(
        store
            .create_group(OTHER, "halls", "Other halls", false)
            .await
            .unwrap()
    );

    // Rename and hide.
    assert!(
        store
            .set_group(HOST, "halls", "Contest halls", false)
            .await
            .unwrap()
    );
    assert_eq!(
        store.group(HOST, "halls").await.unwrap(),
        Some(group(HOST, "halls", "Contest halls", false))
    );
    assert!(!store.set_group(HOST, "nope", "Nope", true).await.unwrap());

    // Names must be one non-empty line; ids non-empty.
    for bad in ["", "two\nlines"] {
        assert!(matches!(
            store.create_group(HOST, "x", bad, true).await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store.set_group(HOST, "jury", bad, true).await,
            Err(StoreError::Invalid(_))
        ));
    }
    assert!(matches!(
        store.create_group(HOST, "", "Empty", true).await,
        Err(StoreError::Invalid(_))
    ));

    // Everything survives reopening the file.
    store.close().await;
    let store = open(&dir).await;
    assert_eq!(store.groups(HOST).await.unwrap().len(), 3);
    assert_eq!(
        store.group(OTHER, "halls").await.unwrap(),
        Some(group(OTHER, "halls", "Other halls", false))
    );
}

#[tokio::test]
async fn members_are_added_and_removed_and_each_call_says_what_changed() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    store
        .create_group(HOST, "halls", "Halls", true)
        .await
        .unwrap();

    let added = store
        .add_members(
            HOST,
            "halls",
            &jids(&["zoe@example.org", "alice@example.org", "zoe@example.org"]),
        )
        .await
        .unwrap();
    assert_eq!(added, jids(&["zoe@example.org", "alice@example.org"]));
    let added = store
        .add_members(
            HOST,
            "halls",
            &jids(&["alice@example.org", "bob@example.net"]),
        )
        .await
        .unwrap();
    assert_eq!(
        added,
        jids(&["bob@example.net"]),
        "alice was a member already"
    );
    assert_eq!(
        store.members(HOST, "halls").await.unwrap(),
        jids(&["alice@example.org", "bob@example.net", "zoe@example.org"])
    );

    let removed = store
        .remove_members(
            HOST,
            "halls",
            &jids(&["zoe@example.org", "nobody@example.org"]),
        )
        .await
        .unwrap();
    assert_eq!(removed, jids(&["zoe@example.org"]));
    assert_eq!(
        store.members(HOST, "halls").await.unwrap(),
        jids(&["alice@example.org", "bob@example.net"])
    );

    // No such group: adding is refused, removing and listing find nothing.
    assert!(matches!(
        store
            .add_members(HOST, "nope", &jids(&["alice@example.org"]))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(
        store
            .remove_members(HOST, "nope", &jids(&["alice@example.org"]))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.members(HOST, "nope").await.unwrap().is_empty());
    assert!(store.members(OTHER, "halls").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_deleted_group_takes_its_memberships_along() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    store
        .create_group(HOST, "halls", "Halls", true)
        .await
        .unwrap();
    store
        .add_members(HOST, "halls", &jids(&["alice@example.org"]))
        .await
        .unwrap();
    assert!(store.delete_group(HOST, "halls").await.unwrap());
    assert!(!store.delete_group(HOST, "halls").await.unwrap());
    assert_eq!(store.group(HOST, "halls").await.unwrap(), None);
    assert!(
        store
            .groups_of(HOST, "alice@example.org")
            .await
            .unwrap()
            .is_empty()
    );
    // A new group with the same id starts empty.
    store
        .create_group(HOST, "halls", "Halls", true)
        .await
        .unwrap();
    assert!(store.members(HOST, "halls").await.unwrap().is_empty());
}

#[tokio::test]
async fn members_see_the_other_members_of_shown_groups_only() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    store
        .create_group(HOST, "halls", "Halls", true)
        .await
        .unwrap();
    store
        .create_group(HOST, "staff", "Staff", true)
        .await
        .unwrap();
    store
        .create_group(HOST, "jury", "Jury", false)
        .await
        .unwrap();
    let (alice, bob, carol) = ("alice@example.org", "bob@example.org", "carol@example.org");
    store
        .add_members(HOST, "halls", &jids(&[alice, bob]))
        .await
        .unwrap();
    store
        .add_members(HOST, "staff", &jids(&[alice, bob, carol]))
        .await
        .unwrap();
    store
        .add_members(HOST, "jury", &jids(&[alice, carol]))
        .await
        .unwrap();

    let groups: Vec<String> = store
        .groups_of(HOST, alice)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(groups, jids(&["halls", "jury", "staff"]));
    assert!(store.groups_of(OTHER, alice).await.unwrap().is_empty());

    // Alice sees bob through two groups and carol through staff, not through the jury.
    let pair = |c: &str, g: &str| (c.to_owned(), g.to_owned());
    assert_eq!(
        store.shown_contacts(HOST, alice).await.unwrap(),
        vec![pair(bob, "Halls"), pair(bob, "Staff"), pair(carol, "Staff")]
    );
    assert_eq!(
        store.shown_contacts(HOST, carol).await.unwrap(),
        vec![pair(alice, "Staff"), pair(bob, "Staff")]
    );
    assert!(
        store
            .shown_contacts(HOST, "dave@example.org")
            .await
            .unwrap()
            .is_empty()
    );

    // Showing the jury makes it count.
    store.set_group(HOST, "jury", "Jury", true).await.unwrap();
    assert_eq!(
        store.shown_contacts(HOST, carol).await.unwrap(),
        vec![
            pair(alice, "Jury"),
            pair(alice, "Staff"),
            pair(bob, "Staff")
        ]
    );
}

#[tokio::test]
async fn a_member_removed_everywhere_leaves_every_group_of_every_host() {
    let dir = TempDir::new().unwrap();
    let store = open(&dir).await;
    let (alice, bob) = ("alice@example.org", "bob@example.org");
    for (host, id) in [(HOST, "halls"), (HOST, "jury"), (OTHER, "guests")] {
        store.create_group(host, id, id, true).await.unwrap();
        store
            .add_members(host, id, &jids(&[alice, bob]))
            .await
            .unwrap();
    }
    assert_eq!(store.remove_member_everywhere(alice).await.unwrap(), 3);
    assert_eq!(store.remove_member_everywhere(alice).await.unwrap(), 0);
    for (host, id) in [(HOST, "halls"), (HOST, "jury"), (OTHER, "guests")] {
        assert_eq!(store.members(host, id).await.unwrap(), jids(&[bob]));
    }
}

#[tokio::test]
async fn groups_work_through_the_trait_objects() {
    let stores = SqliteStore::open_memory().await.unwrap().into_stores();
    assert!(
        stores
            .groups
            .create_group(HOST, "halls", "Halls", true)
            .await
            .unwrap()
    );
    stores
        .groups
        .add_members(HOST, "halls", &jids(&["alice@example.org"]))
        .await
        .unwrap();
    assert_eq!(
        stores
            .groups
            .groups_of(HOST, "alice@example.org")
            .await
            .unwrap(),
        vec![group(HOST, "halls", "Halls", true)]
    );
}
