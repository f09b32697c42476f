//! Loading a whole roster from the SQLite store, as every roster get (and every login of an
//! interested client) does.
//!
//! `cargo bench -p rookery-storage --bench roster` (add `-- --quick` for a short run).
//!
//! * `roster_load/{100,1000}`: [`RosterStore::roster`] for a user with that many items, from
//!   a real database file in a temporary directory (WAL, the pool of the server), on a
//!   multi-threaded tokio runtime like the server's. Throughput in roster items.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rookery_storage::sqlite::SqliteStore;
use rookery_storage::{RosterItem, RosterStore, Subscription};
use tempfile::TempDir;

const HOST: &str = "example.org";
const SIZES: [usize; 2] = [100, 1000];

fn user(size: usize) -> String {
    format!("user{size}")
}

/// A plausible roster entry: most contacts named, in one or two groups, mutually subscribed.
fn item(i: usize) -> RosterItem {
    let mut groups = vec![["Friends", "Work", "Family", "Chess club"][i % 4].to_owned()];
    if i.is_multiple_of(5) {
        groups.push("Favourites".to_owned());
    }
    RosterItem {
        contact: format!("contact{i:04}@{}", ["example.net", "jabber.test"][i % 2]),
        name: (!i.is_multiple_of(7)).then(|| format!("Contact number {i}")),
        groups,
        subscription: match i % 10 {
            0 => Subscription::To,
            1 => Subscription::From,
            _ => Subscription::Both,
        },
        ask_out: false,
        pending_in: false,
        approved: false,
        in_roster: true,
    }
}

fn bench_roster(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = TempDir::new().expect("temp dir");
    let store = rt.block_on(async {
        let store = SqliteStore::open(&dir.path().join("rookery.sqlite"))
            .await
            .expect("open store");
        for size in SIZES {
            for i in 0..size {
                store
                    .put_roster_item(HOST, &user(size), &item(i))
                    .await
                    .expect("put roster item");
            }
            let (_, items) = store.roster(HOST, &user(size)).await.unwrap();
            assert_eq!(items.len(), size);
        }
        store
    });

    let mut group = c.benchmark_group("roster_load");
    for size in SIZES {
        let user = user(size);
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &user, |b, user| {
            b.to_async(&rt).iter(|| async {
                let (version, items) = store.roster(HOST, black_box(user)).await.unwrap();
                debug_assert_eq!(items.len(), size);
                black_box((version, items))
            })
        });
    }
    group.finish();

    rt.block_on(store.close());
}

criterion_group!(benches, bench_roster);
criterion_main!(benches);
