//! Makes cargo rebuild the crate when a migration is added or edited, since
//! `sqlx::migrate!` embeds the files at compile time.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
