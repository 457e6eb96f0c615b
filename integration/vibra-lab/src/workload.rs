//! The URL corpus and the synthetic World-Cup-like request stream of the trace experiments.
//!
//! # URL corpus
//! Either the real list of the 1998 World Cup site (`object_mappings.sort`, 89,997 URLs), read
//! by the workspace's one reader, the `wc98` crate ([`wc98::urls`]: `--urls FILE`, else
//! `$VIBRA_DATA_DIR/wc98/`, else `../shared/data/wc98/` beside the workspace root; never
//! copied into this repository), or [`GENERATED_URLS`] generated URLs of the same shapes
//! (`/english/competition/matchstat8874.htm`, `/images/...gif`, about 3.5% with a `?query`),
//! drawn from the seed. Either way the [`HOT_OBJECTS`] are in it, verbatim.
//!
//! # Stream model (the dissertation's 10-minute clip of 30 June 1998, section 3.5.1)
//! No per-request order or sizes survive in the shared data, so the stream is modelled:
//! - **Hot objects**: the 8 [`HOT_OBJECTS`] the dissertation describes (the two splash
//!   screens, one game's programme and statistics pages in English and French, two embedded
//!   images), with fixed request shares (12.7% together) and sizes. The English splash screen
//!   is set to carry about a quarter of all bytes, as in the dissertation (24%).
//! - **Cold objects**: [`StreamModel::cold_objects`] URLs drawn without replacement from the
//!   rest of the corpus, ranked in the order drawn, requested with a Zipf law of exponent
//!   [`StreamModel::zipf_exponent`] over the rank (the remaining 87.3% of requests).
//! - **Sizes**: cold objects are log-normal, median [`StreamModel::median_bytes`] and
//!   log-sd [`StreamModel::size_sigma`] (mean about 12 KB), clamped to 100 B..4 MiB; this
//!   puts the total size of the distinct objects near the dissertation's ~56 MB.
//! - **Defaults** ([`StreamModel::WORLD_CUP_CLIP`]): 80,000 requests over 5,000 cold
//!   objects with exponent 1.0: about 4,650 distinct objects requested and about 3,000 of them
//!   seen by each of 4 round-robin servers (the dissertation's table 3.1: 4,656 and ~2,800).
//!
//! Every random choice comes from a ChaCha8 generator seeded with the run's seed.
//!
//! ```
//! use vibra_lab::workload::{StreamModel, UrlCorpus};
//! let corpus = UrlCorpus::generated(2_000, 7);
//! let model = StreamModel { requests: 5_000, cold_objects: 500, ..StreamModel::WORLD_CUP_CLIP };
//! let stream = model.generate(&corpus, 7).unwrap();
//! assert_eq!(stream.requests.len(), 5_000);
//! assert_eq!(stream.objects.len(), 8 + 500);
//! ```

use std::collections::HashSet;
use std::path::PathBuf;

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Zipf};

use crate::LabError;

pub mod youtube;

/// One of the very hot objects of the modelled clip.
///
/// ```
/// let splash = vibra_lab::workload::HOT_OBJECTS[0];
/// assert_eq!(splash.url, "/english/splash_inet.html");
/// assert!(splash.request_share > 0.0 && splash.bytes > 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HotObject {
    /// Its URL, present in the real list.
    pub url: &'static str,
    /// Its share of all requests, in [0, 1].
    pub request_share: f64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The hot objects: the dissertation names "splash screens, the program and statistics (or
/// status) of the ongoing game in both English and French, and two embedded images"
/// (section 3.5.1). Game 8874 is one whose four pages are all in the real list.
///
/// ```
/// use vibra_lab::workload::HOT_OBJECTS;
/// let share: f64 = HOT_OBJECTS.iter().map(|h| h.request_share).sum();
/// assert!((share - 0.127).abs() < 1e-9);
/// ```
pub const HOT_OBJECTS: [HotObject; 8] = [
    hot("/english/splash_inet.html", 0.040, 150 * 1024),
    hot("/french/splash_inet.html", 0.015, 150 * 1024),
    hot("/english/competition/matchprog8874.htm", 0.020, 48 * 1024),
    hot("/english/competition/matchstat8874.htm", 0.020, 48 * 1024),
    hot("/french/competition/matchprog8874.htm", 0.006, 48 * 1024),
    hot("/french/competition/matchstat8874.htm", 0.006, 48 * 1024),
    hot("/images/home_intro.anim.gif", 0.010, 60 * 1024),
    hot("/images/home_logo.gif", 0.010, 12 * 1024),
];

const fn hot(url: &'static str, request_share: f64, bytes: u64) -> HotObject {
    HotObject {
        url,
        request_share,
        bytes,
    }
}

/// How many URLs [`UrlCorpus::generated`] makes by default: as many as the real list has.
///
/// ```
/// assert_eq!(vibra_lab::workload::GENERATED_URLS, 89_997);
/// ```
pub const GENERATED_URLS: usize = 89_997;

/// Where a corpus came from.
///
/// ```
/// use vibra_lab::workload::CorpusSource;
/// assert_eq!(CorpusSource::Generated { seed: 3 }.to_string(), "generated URLs (seed 3)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorpusSource {
    /// The real World Cup URL list at this path.
    WorldCup(PathBuf),
    /// Generated from this seed.
    Generated {
        /// The seed.
        seed: u64,
    },
}

impl std::fmt::Display for CorpusSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CorpusSource::WorldCup(p) => write!(f, "the World Cup URL list {}", p.display()),
            CorpusSource::Generated { seed } => write!(f, "generated URLs (seed {seed})"),
        }
    }
}

/// A list of distinct URLs (raw bytes: the real list is not all UTF-8).
///
/// ```
/// let corpus = vibra_lab::workload::UrlCorpus::generated(100, 9);
/// assert_eq!(corpus.urls[0], b"/english/splash_inet.html");
/// ```
#[derive(Debug, Clone)]
pub struct UrlCorpus {
    /// The URLs, in file order (or generation order).
    pub urls: Vec<Vec<u8>>,
    /// Where they came from.
    pub source: CorpusSource,
}

impl UrlCorpus {
    /// The URLs of a World Cup list read by [`wc98::urls`], in file order and byte for byte,
    /// plus any [`HOT_OBJECTS`] URL it lacks (appended).
    ///
    /// ```
    /// let list = wc98::UrlList {
    ///     path: "m.sort".into(),
    ///     urls: vec![b"/images/home_logo.gif".to_vec(), b"/a b.html\r".to_vec()],
    /// };
    /// let corpus = vibra_lab::workload::UrlCorpus::from_list(&list);
    /// assert_eq!(corpus.urls[1], b"/a b.html\r");
    /// assert_eq!(corpus.urls.len(), 2 + 7); // the hot objects are always there
    /// ```
    pub fn from_list(list: &wc98::UrlList) -> Self {
        let mut corpus = UrlCorpus {
            urls: list.urls.clone(),
            source: CorpusSource::WorldCup(list.path.clone()),
        };
        corpus.ensure_hot_objects();
        corpus
    }

    /// Generates `count` distinct World-Cup-shaped URLs (the [`HOT_OBJECTS`] first).
    ///
    /// ```
    /// let c = vibra_lab::workload::UrlCorpus::generated(1_000, 1);
    /// assert_eq!(c.urls.len(), 1_000);
    /// assert_eq!(c.urls, vibra_lab::workload::UrlCorpus::generated(1_000, 1).urls);
    /// ```
    pub fn generated(count: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(0x9E37_79B9_7F4A_7C15));
        let mut seen: HashSet<Vec<u8>> = HashSet::with_capacity(count);
        let mut urls = Vec::with_capacity(count);
        for h in HOT_OBJECTS.iter().take(count) {
            seen.insert(h.url.as_bytes().to_vec());
            urls.push(h.url.as_bytes().to_vec());
        }
        while urls.len() < count {
            let url = generated_url(&mut rng);
            if seen.insert(url.clone()) {
                urls.push(url);
            }
        }
        UrlCorpus {
            urls,
            source: CorpusSource::Generated { seed },
        }
    }

    /// The real list when one was read ([`UrlCorpus::from_list`]), generated URLs
    /// ([`GENERATED_URLS`]) otherwise.
    ///
    /// ```
    /// let c = vibra_lab::workload::UrlCorpus::from_option(None, 3);
    /// assert_eq!(c.urls.len(), vibra_lab::workload::GENERATED_URLS);
    /// ```
    pub fn from_option(list: Option<&wc98::UrlList>, seed: u64) -> Self {
        match list {
            Some(list) => UrlCorpus::from_list(list),
            None => UrlCorpus::generated(GENERATED_URLS, seed),
        }
    }

    fn ensure_hot_objects(&mut self) {
        let present: HashSet<&[u8]> = self.urls.iter().map(Vec::as_slice).collect();
        let missing: Vec<Vec<u8>> = HOT_OBJECTS
            .iter()
            .map(|h| h.url.as_bytes())
            .filter(|u| !present.contains(u))
            .map(<[u8]>::to_vec)
            .collect();
        self.urls.extend(missing);
    }
}

const WORDS: [&str; 24] = [
    "home", "nav", "team", "venue", "comp", "news", "splash", "logo", "bg", "stage", "group",
    "player", "photo", "ticket", "history", "mascot", "trophy", "download", "screen", "result",
    "france", "brasil", "italia", "bracket",
];
const LANGS: [&str; 2] = ["english", "french"];

fn generated_url(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let lang = LANGS[rng.random_range(0..LANGS.len())];
    let word = WORDS[rng.random_range(0..WORDS.len())];
    let n: u32 = rng.random_range(0..200_000);
    let game: u32 = rng.random_range(8_848..8_912);
    let mut url = match rng.random_range(0..10) {
        0 => format!("/{lang}/competition/matchstat{game}.htm"),
        1 => format!("/{lang}/competition/matchprog{game}.htm"),
        2 => format!("/{lang}/competition/playermatch{game}_{}.htm", n % 400),
        3 => format!("/{lang}/news/{}{word}.htm", n % 3_000),
        4 => format!("/{lang}/teams/teambio{}.htm", n % 2_000),
        5 => format!("/{lang}/images/{word}_{}.gif", n),
        6 => format!("/images/{word}_{}.gif", n),
        7 => format!("/images/{word}{}.jpg", n),
        8 => format!("/{lang}/{word}/{}/index.html", n % 5_000),
        _ => format!("/{lang}/{word}{}.html", n % 50_000),
    };
    // About 3.5% of the real list carries a query (3,305 of 89,997).
    if rng.random_bool(0.035) {
        url.push_str(&format!(
            "?laposte={:012}",
            rng.random_range(0..1_000_000_000_000u64)
        ));
    }
    url.into_bytes()
}

/// The parameters of the synthetic stream (see the module documentation).
///
/// ```
/// use vibra_lab::workload::StreamModel;
/// let small = StreamModel { requests: 1_000, ..StreamModel::WORLD_CUP_CLIP };
/// assert_eq!(small.cold_objects, 5_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamModel {
    /// Number of requests.
    pub requests: usize,
    /// Number of cold objects that may be requested.
    pub cold_objects: usize,
    /// Zipf exponent of the cold objects' popularity.
    pub zipf_exponent: f64,
    /// Median size of a cold object, in bytes.
    pub median_bytes: f64,
    /// Log-space standard deviation of a cold object's size.
    pub size_sigma: f64,
}

impl StreamModel {
    /// The defaults, fitted to the dissertation's table 3.1 (see the module documentation).
    ///
    /// ```
    /// use vibra_lab::workload::StreamModel;
    /// assert_eq!(StreamModel::WORLD_CUP_CLIP.requests, 80_000);
    /// ```
    pub const WORLD_CUP_CLIP: StreamModel = StreamModel {
        requests: 80_000,
        cold_objects: 5_000,
        zipf_exponent: 1.0,
        median_bytes: 4_096.0,
        size_sigma: 1.5,
    };

    const MIN_BYTES: f64 = 100.0;
    const MAX_BYTES: f64 = 4.0 * 1024.0 * 1024.0;

    /// Draws a stream over `corpus` from `seed`.
    ///
    /// # Errors
    /// [`LabError::BadArgument`] when the corpus has fewer than `cold_objects` URLs besides
    /// the hot ones, or a parameter is out of range.
    ///
    /// ```
    /// use vibra_lab::workload::{StreamModel, UrlCorpus};
    /// let corpus = UrlCorpus::generated(100, 1);
    /// let too_many = StreamModel { cold_objects: 1_000, ..StreamModel::WORLD_CUP_CLIP };
    /// assert!(too_many.generate(&corpus, 1).is_err());
    /// ```
    pub fn generate(&self, corpus: &UrlCorpus, seed: u64) -> Result<Stream, LabError> {
        let bad = |reason: String| LabError::BadArgument {
            option: "stream model",
            reason,
        };
        let hot_urls: HashSet<&[u8]> = HOT_OBJECTS.iter().map(|h| h.url.as_bytes()).collect();
        let hot_index: Vec<usize> = HOT_OBJECTS
            .iter()
            .map(|h| {
                corpus
                    .urls
                    .iter()
                    .position(|u| u == h.url.as_bytes())
                    .ok_or_else(|| bad(format!("corpus lacks the hot object {}", h.url)))
            })
            .collect::<Result<_, _>>()?;
        let cold_pool: Vec<usize> = (0..corpus.urls.len())
            .filter(|&i| !hot_urls.contains(corpus.urls[i].as_slice()))
            .collect();
        if self.cold_objects == 0 || self.cold_objects > cold_pool.len() {
            return Err(bad(format!(
                "{} cold objects asked, {} available",
                self.cold_objects,
                cold_pool.len()
            )));
        }
        let zipf = Zipf::new(self.cold_objects as f64, self.zipf_exponent)
            .map_err(|e| bad(format!("zipf: {e}")))?;
        let sizes = LogNormal::new(self.median_bytes.ln(), self.size_sigma)
            .map_err(|e| bad(format!("size model: {e}")))?;

        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut objects: Vec<Object> = HOT_OBJECTS
            .iter()
            .zip(&hot_index)
            .map(|(h, &url)| Object {
                url,
                bytes: h.bytes,
            })
            .collect();
        for pick in sample(&mut rng, cold_pool.len(), self.cold_objects) {
            let bytes = sizes
                .sample(&mut rng)
                .clamp(Self::MIN_BYTES, Self::MAX_BYTES)
                .round() as u64;
            objects.push(Object {
                url: cold_pool[pick],
                bytes,
            });
        }
        let hot_total: f64 = HOT_OBJECTS.iter().map(|h| h.request_share).sum();
        let mut requests = Vec::with_capacity(self.requests);
        for _ in 0..self.requests {
            let u: f64 = rng.random();
            let object = if u < hot_total {
                let mut acc = 0.0;
                HOT_OBJECTS
                    .iter()
                    .position(|h| {
                        acc += h.request_share;
                        u < acc
                    })
                    .unwrap_or(HOT_OBJECTS.len() - 1)
            } else {
                // Zipf samples are ranks 1..=cold_objects (as floats).
                let rank = zipf.sample(&mut rng) as usize;
                HOT_OBJECTS.len() + rank.clamp(1, self.cold_objects) - 1
            };
            requests.push(object as u32);
        }
        Ok(Stream { objects, requests })
    }
}

/// One object of a stream: a URL of the corpus and its size.
///
/// ```
/// let o = vibra_lab::workload::Object { url: 0, bytes: 512 };
/// assert_eq!(o.bytes, 512);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Object {
    /// Index into [`UrlCorpus::urls`].
    pub url: usize,
    /// Size in bytes (what one request for it transfers).
    pub bytes: u64,
}

/// A request stream: the objects (hot ones first) and the requests as object indices.
///
/// ```
/// use vibra_lab::workload::{Object, Stream};
/// let s = Stream { objects: vec![Object { url: 3, bytes: 1 }], requests: vec![0] };
/// assert_eq!(s.requests.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The objects that may be requested; the first [`HOT_OBJECTS`]`.len()` are the hot ones.
    pub objects: Vec<Object>,
    /// The requests, in order, as indices into `objects`.
    pub requests: Vec<u32>,
}

impl Stream {
    /// Total bytes transferred by the stream.
    ///
    /// ```
    /// use vibra_lab::workload::{Object, Stream};
    /// let s = Stream { objects: vec![Object { url: 0, bytes: 10 }], requests: vec![0, 0] };
    /// assert_eq!(s.total_bytes(), 20);
    /// ```
    pub fn total_bytes(&self) -> u64 {
        self.requests
            .iter()
            .map(|&o| self.objects[o as usize].bytes)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let corpus = UrlCorpus::generated(20_000, 5);
        let m = StreamModel {
            requests: 10_000,
            ..StreamModel::WORLD_CUP_CLIP
        };
        let a = m.generate(&corpus, 9).unwrap();
        assert_eq!(a, m.generate(&corpus, 9).unwrap());
        assert_ne!(a, m.generate(&corpus, 10).unwrap());
    }

    #[test]
    fn hot_objects_get_their_request_shares() {
        let corpus = UrlCorpus::generated(20_000, 5);
        let m = StreamModel::WORLD_CUP_CLIP;
        let s = m.generate(&corpus, 1).unwrap();
        for (i, h) in HOT_OBJECTS.iter().enumerate() {
            let n = s.requests.iter().filter(|&&o| o as usize == i).count();
            let share = n as f64 / s.requests.len() as f64;
            // 80,000 draws: the standard deviation of a 4% share is 0.07 points.
            assert!(
                (share - h.request_share).abs() < 0.005,
                "{}: {share}",
                h.url
            );
            assert_eq!(corpus.urls[s.objects[i].url], h.url.as_bytes());
        }
    }

    #[test]
    fn the_default_clip_requests_about_as_many_distinct_objects_as_the_dissertation() {
        let corpus = UrlCorpus::generated(GENERATED_URLS, 2);
        let s = StreamModel::WORLD_CUP_CLIP.generate(&corpus, 2).unwrap();
        let distinct: HashSet<u32> = s.requests.iter().copied().collect();
        // Table 3.1 sums to 4,656 distinct objects; the model's expectation is ~4,650.
        assert!(
            (4_300..5_000).contains(&distinct.len()),
            "{}",
            distinct.len()
        );
        let sizes: u64 = distinct.iter().map(|&o| s.objects[o as usize].bytes).sum();
        // Table 3.1: about 56 MB of distinct objects in all.
        assert!((30e6..90e6).contains(&(sizes as f64)), "{sizes}");
    }

    #[test]
    fn a_real_list_is_kept_byte_for_byte_and_gets_the_missing_hot_objects() {
        let list = wc98::UrlList {
            path: PathBuf::from("m.sort"),
            urls: vec![
                b"/x y\r".to_vec(),
                HOT_OBJECTS[3].url.as_bytes().to_vec(),
                b"/\xff".to_vec(),
            ],
        };
        let c = UrlCorpus::from_list(&list);
        assert_eq!(&c.urls[..3], &list.urls[..]);
        // The hot object already there is not added twice; the other seven are appended.
        assert_eq!(c.urls.len(), 3 + HOT_OBJECTS.len() - 1);
        for h in HOT_OBJECTS {
            let n = c.urls.iter().filter(|u| *u == h.url.as_bytes()).count();
            assert_eq!(n, 1, "{}", h.url);
        }
        assert_eq!(c.source, CorpusSource::WorldCup(PathBuf::from("m.sort")));
        // And the stream model runs on it only when there are enough cold objects.
        let m = StreamModel {
            requests: 10,
            cold_objects: 2,
            ..StreamModel::WORLD_CUP_CLIP
        };
        assert_eq!(
            m.generate(&c, 1).unwrap().objects.len(),
            HOT_OBJECTS.len() + 2
        );
        let m = StreamModel {
            cold_objects: 3,
            ..m
        };
        assert!(matches!(
            m.generate(&c, 1),
            Err(LabError::BadArgument { .. })
        ));
    }

    #[test]
    fn the_real_list_gives_a_corpus_of_its_89_997_urls_in_file_order() {
        // wc98 checks the list's content; this checks vibra-lab keeps all of it, in order,
        // and that every hot object of the model is a real URL of the site.
        let Some(list) = wc98::urls_or_skip("vibra-lab real corpus") else {
            return;
        };
        let c = UrlCorpus::from_list(&list);
        assert_eq!(c.urls.len(), 89_997);
        assert_eq!(c.urls, list.urls);
    }
}
