//! # wc98
//!
//! The one reader of the 1998 World Cup data for Vibra's tests, benchmarks and experiments:
//! where the data is ([`data_dir`]), the URL list ([`read_urls`], [`urls`]) and the per-minute
//! request counts ([`read_requests_per_minute`]). A leaf crate with no workspace dependency, so
//! any crate may dev-depend on it; `publish = false`, so no crate a user links can.
//!
//! The data is HP's and is never copied into the repository: it is read from
//! `$VIBRA_DATA_DIR`, or from `../shared/data` beside the workspace root.
//!
//! ```
//! // Whatever the machine: either the list is there and parses, or there is nothing.
//! if let Some(list) = wc98::urls(None).unwrap() {
//!     assert!(list.urls.len() > 80_000);
//! }
//! ```
#![forbid(unsafe_code)]

mod error;
mod location;
mod minutes;
mod packed;
mod url_list;

pub use error::Wc98Error;
pub use location::{DATA_DIR_ENV, REQUIRE_DATA_ENV, data_dir, default_data_dir};
pub use minutes::{MINUTES_FILE, MinuteCount, read_requests_per_minute, requests_per_minute};
pub use packed::PackedUrls;
pub use url_list::{URLS_FILE, UrlList, parse_line, read_urls, urls, urls_or_skip};
