//! SCRAM cost per login: what a burst of logins costs the server's CPU.
//!
//! `cargo bench -p rookery-sasl --bench scram` (add `-- --quick` for a short run).
//!
//! * `scram_exchange/{SHA-1,SHA-256}`: one whole exchange at 4096 iterations, client and
//!   server side together (client-first → server-first → client-final → server-final →
//!   verification), the server holding the user's stored keys. The client's PBKDF2 dominates.
//! * `scram_derive/{SHA-1,SHA-256}`: [`ScramKeys::derive`] alone (SASLprep + PBKDF2 at 4096
//!   iterations + the HMACs), what `user add`, a password change or a PLAIN login costs.
//!
//! The server side alone is roughly `scram_exchange − scram_derive`: its server nonce is
//! random outside the crate's tests, so a client-final-message cannot be prepared ahead.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use rookery_sasl::{
    ChannelBindings, DEFAULT_ITERATIONS, HashAlgo, ScramClient, ScramKeys, ScramServer,
};

const USER: &str = "juliet";
const PASSWORD: &str = "r0m30myr0m30";
const SALT: [u8; 16] = *b"0123456789abcdef";

const HASHES: [HashAlgo; 2] = [HashAlgo::Sha1, HashAlgo::Sha256];

/// One whole exchange; panics if authentication does not succeed.
fn exchange(hash: HashAlgo, keys: &ScramKeys) {
    let mut client = ScramClient::new(hash, USER, PASSWORD, None);
    let mut server = ScramServer::new(hash, false, false, ChannelBindings::default());
    let first = server
        .client_first(&client.client_first())
        .expect("client-first accepted");
    assert_eq!(first.username, USER);
    let server_first = server.server_first(Some(keys.clone()));
    let client_final = client
        .client_final(&server_first)
        .expect("server-first accepted");
    let server_final = server.client_final(&client_final).expect("proof accepted");
    client
        .verify_server_final(&server_final)
        .expect("server signature accepted");
}

fn bench_exchange(c: &mut Criterion) {
    let mut group = c.benchmark_group("scram_exchange");
    // Milliseconds per iteration: flat sampling with fewer samples keeps a run short.
    group.sampling_mode(SamplingMode::Flat).sample_size(30);
    for hash in HASHES {
        let keys = ScramKeys::derive(hash, PASSWORD, &SALT, DEFAULT_ITERATIONS).unwrap();
        exchange(hash, &keys);
        group.bench_with_input(
            BenchmarkId::from_parameter(hash.name()),
            &keys,
            |b, keys| b.iter(|| exchange(hash, black_box(keys))),
        );
    }
    group.finish();
}

fn bench_derive(c: &mut Criterion) {
    let mut group = c.benchmark_group("scram_derive");
    group.sampling_mode(SamplingMode::Flat).sample_size(30);
    for hash in HASHES {
        group.bench_function(BenchmarkId::from_parameter(hash.name()), |b| {
            b.iter(|| {
                ScramKeys::derive(
                    hash,
                    black_box(PASSWORD),
                    black_box(&SALT),
                    DEFAULT_ITERATIONS,
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_exchange, bench_derive);
criterion_main!(benches);
