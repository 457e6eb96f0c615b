//! The YouTube-like workload of the dissertation's section 3.5.4 (fig. 3.10).
//!
//! # What the dissertation says
//! "The workload generator first creates a number of files with random IDs, each of which
//! represents a video clip. The bit-rate and length of each video clip follow the statistical
//! model reported in [20]. The accesses to these files follow Zipf's law with beta = 0.56
//! [40]. [...] we assume [popularity and size] are uncorrelated." 2,000 videos (12 GB),
//! 4,000 requests (25 GB). [20] is X. Cheng, C. Dale, J. Liu, "Understanding the
//! characteristics of internet short video sharing: YouTube as a case study" (IWQoS 2008,
//! arXiv:0707.3670); [40] is P. Gill, M. Arlitt, Z. Li, A. Mahanti, "YouTube traffic
//! characterization: a view from the edge" (IMC 2007).
//!
//! # The model used here ([`YouTubeModel::SECTION_3_5_4`])
//! The statistics of [20] this model is calibrated to (its length, size and bit-rate
//! figures): 97.9% of videos are at most 600 s long and 99.1% at most 700 s, with three
//! peaks (under one minute, 3-4 minutes, and just below the 10-minute upload limit); most
//! bit-rates are around 330 kbit/s; the mean file size is 8.4 MB and 98.3% are under 25 MB.
//! [20] gives these as histograms, not as fitted parameters, so the distributions below are
//! ours, chosen to come close (the test `the_model_matches_its_source` checks it; on 20,000
//! draws about 98.6% are at most 600 s, 97% under 25 MB, mean 8.5 MB, 24% under a minute:
//! one mixture cannot hit both the 600 s and the 25 MB shares of [20] exactly):
//! - **Length** (s): a mixture, truncated to [`MIN_LENGTH_S`]..=[`MAX_LENGTH_S`] by
//!   redrawing: 30% log-normal with median 45 s and log-sd 0.5 (the sub-minute peak), 54%
//!   normal with mean 190 s and sd 80 s (the 3-4 minute peak), 16% normal with mean 545 s
//!   and sd 40 s (the peak below the 600 s limit).
//! - **Bit-rate** (bit/s): normal with mean 330 kbit/s and sd 30 kbit/s, truncated to
//!   [`MIN_BITRATE_BPS`]..=[`MAX_BITRATE_BPS`] by redrawing.
//! - **Size**: length x bit-rate / 8 bytes, divided by [`YouTubeModel::size_divisor`] (one
//!   factor for the whole corpus). Unscaled, 2,000 videos take about 17 GB (the
//!   dissertation's own corpus took 12 GB); the default divisor 32 brings one copy to about
//!   0.5 GB, under the testbed's 1 GB per back end. Scale the testbed's memory and bandwidth
//!   by the same factor to keep the dissertation's ratios (768 MB and 20 MB/s per VM become
//!   24 MB and 0.625 MB/s).
//! - **Popularity**: video `i` (0-based, in generation order) has popularity rank `i + 1`
//!   and each request picks rank `k` with probability proportional to `k^-beta`, beta 0.56
//!   ([40]). Lengths and bit-rates are drawn independently of the rank (uncorrelated, as the
//!   dissertation assumes); IDs are random, so the URL says nothing about the rank either.
//! - **IDs**: 11 characters of `A-Z a-z 0-9 - _` (YouTube's alphabet), distinct; the URL is
//!   `/videos/<id>.flv`.
//!
//! Every random choice comes from a ChaCha8 generator seeded with the run's seed.
//!
//! ```
//! use vibra_lab::workload::youtube::YouTubeModel;
//! let w = YouTubeModel { requests: 500, ..YouTubeModel::SECTION_3_5_4 }.generate(7).unwrap();
//! assert_eq!(w.videos.len(), 2_000);
//! assert_eq!(w.requests.len(), 500);
//! assert!(w.files().iter().all(|f| vibra_lab::testbed::servable(f.url.as_bytes())));
//! ```

use std::collections::HashSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal, Zipf};

use crate::LabError;
use crate::testbed::{CorpusFile, Request};

/// Shortest video length the model draws, in seconds.
///
/// ```
/// assert_eq!(vibra_lab::workload::youtube::MIN_LENGTH_S, 1.0);
/// ```
pub const MIN_LENGTH_S: f64 = 1.0;

/// Longest video length the model draws, in seconds ([20]: 99.1% of videos are at most
/// 700 s; the rest are cut off here).
///
/// ```
/// assert_eq!(vibra_lab::workload::youtube::MAX_LENGTH_S, 700.0);
/// ```
pub const MAX_LENGTH_S: f64 = 700.0;

/// Lowest bit-rate the model draws, in bit/s.
///
/// ```
/// assert_eq!(vibra_lab::workload::youtube::MIN_BITRATE_BPS, 150_000.0);
/// ```
pub const MIN_BITRATE_BPS: f64 = 150_000.0;

/// Highest bit-rate the model draws, in bit/s.
///
/// ```
/// assert_eq!(vibra_lab::workload::youtube::MAX_BITRATE_BPS, 550_000.0);
/// ```
pub const MAX_BITRATE_BPS: f64 = 550_000.0;

/// The parameters of the YouTube-like workload (see the module documentation).
///
/// ```
/// use vibra_lab::workload::youtube::YouTubeModel;
/// let m = YouTubeModel::SECTION_3_5_4;
/// assert_eq!((m.videos, m.requests, m.zipf_beta), (2_000, 4_000, 0.56));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YouTubeModel {
    /// Number of distinct videos.
    pub videos: usize,
    /// Number of requests.
    pub requests: usize,
    /// Zipf exponent of the popularity over the videos' ranks.
    pub zipf_beta: f64,
    /// Every video's size is its length x bit-rate / 8 divided by this (at least 1).
    pub size_divisor: u64,
}

/// One video: its random ID and what the model drew for it.
///
/// ```
/// use vibra_lab::workload::youtube::Video;
/// let v = Video { id: "abcdefghijk".into(), length_s: 10.0, bitrate_bps: 320_000.0, bytes: 400_000 };
/// assert_eq!(v.url(), "/videos/abcdefghijk.flv");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Video {
    /// Its 11-character ID.
    pub id: String,
    /// Its length in seconds.
    pub length_s: f64,
    /// Its bit-rate in bit/s.
    pub bitrate_bps: f64,
    /// Its file size in bytes (after the model's size divisor).
    pub bytes: u64,
}

impl Video {
    /// The URL the back ends serve it under.
    ///
    /// ```
    /// use vibra_lab::workload::youtube::YouTubeModel;
    /// let w = YouTubeModel { videos: 3, requests: 1, ..YouTubeModel::SECTION_3_5_4 }.generate(1).unwrap();
    /// assert!(w.videos[0].url().starts_with("/videos/"));
    /// ```
    pub fn url(&self) -> String {
        format!("/videos/{}.flv", self.id)
    }
}

/// A generated workload: the videos in popularity-rank order (index 0 is rank 1) and the
/// requests as video indices.
///
/// ```
/// use vibra_lab::workload::youtube::YouTubeModel;
/// let w = YouTubeModel { videos: 10, requests: 20, ..YouTubeModel::SECTION_3_5_4 }.generate(3).unwrap();
/// assert!(w.requests.iter().all(|&r| (r as usize) < w.videos.len()));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct YouTubeWorkload {
    /// The videos; index `i` has popularity rank `i + 1`.
    pub videos: Vec<Video>,
    /// The requests, in order, as indices into `videos`.
    pub requests: Vec<u32>,
}

impl YouTubeModel {
    /// Section 3.5.4's sizes: 2,000 videos, 4,000 requests, Zipf beta 0.56, sizes divided
    /// by 32 (one corpus copy about 0.5 GB).
    ///
    /// ```
    /// assert_eq!(vibra_lab::workload::youtube::YouTubeModel::SECTION_3_5_4.size_divisor, 32);
    /// ```
    pub const SECTION_3_5_4: YouTubeModel = YouTubeModel {
        videos: 2_000,
        requests: 4_000,
        zipf_beta: 0.56,
        size_divisor: 32,
    };

    /// Draws the videos and the requests from `seed`.
    ///
    /// # Errors
    /// [`LabError::BadArgument`] when there are no videos, more than `u32::MAX` of them, a
    /// size divisor of 0, or a Zipf exponent that is not finite and non-negative.
    ///
    /// ```
    /// use vibra_lab::workload::youtube::YouTubeModel;
    /// assert!(YouTubeModel { videos: 0, ..YouTubeModel::SECTION_3_5_4 }.generate(1).is_err());
    /// assert!(YouTubeModel { zipf_beta: f64::NAN, ..YouTubeModel::SECTION_3_5_4 }.generate(1).is_err());
    /// ```
    pub fn generate(&self, seed: u64) -> Result<YouTubeWorkload, LabError> {
        let bad = |reason: String| LabError::BadArgument {
            option: "youtube model",
            reason,
        };
        if self.videos == 0 || self.videos > u32::MAX as usize {
            return Err(bad(format!("{} videos (1..=u32::MAX)", self.videos)));
        }
        if self.size_divisor == 0 {
            return Err(bad("a size divisor of 0".into()));
        }
        if !(self.zipf_beta.is_finite() && self.zipf_beta >= 0.0) {
            return Err(bad(format!("zipf exponent {}", self.zipf_beta)));
        }
        let zipf =
            Zipf::new(self.videos as f64, self.zipf_beta).map_err(|e| bad(format!("zipf: {e}")))?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5975_5475_6265_0356);
        let lengths = LengthModel::new();
        let bitrate = Normal::new(330_000.0, 30_000.0).expect("constant parameters are valid");
        let mut ids: HashSet<String> = HashSet::with_capacity(self.videos);
        let mut videos = Vec::with_capacity(self.videos);
        while videos.len() < self.videos {
            let id = random_id(&mut rng);
            if !ids.insert(id.clone()) {
                continue;
            }
            let length_s = lengths.sample(&mut rng);
            let bitrate_bps = truncated(&bitrate, &mut rng, MIN_BITRATE_BPS, MAX_BITRATE_BPS);
            let bytes = (length_s * bitrate_bps / 8.0 / self.size_divisor as f64).round() as u64;
            videos.push(Video {
                id,
                length_s,
                bitrate_bps,
                bytes,
            });
        }
        let requests = (0..self.requests)
            .map(|_| (zipf.sample(&mut rng) as u32).clamp(1, self.videos as u32) - 1)
            .collect();
        Ok(YouTubeWorkload { videos, requests })
    }
}

impl YouTubeWorkload {
    /// Every video as a file for the testbed's back ends (all of them, requested or not:
    /// the corpus is the whole catalogue).
    ///
    /// ```
    /// use vibra_lab::workload::youtube::YouTubeModel;
    /// let w = YouTubeModel { videos: 5, requests: 1, ..YouTubeModel::SECTION_3_5_4 }.generate(2).unwrap();
    /// assert_eq!(w.files().len(), 5);
    /// assert_eq!(w.files()[0].bytes, w.videos[0].bytes);
    /// ```
    pub fn files(&self) -> Vec<CorpusFile> {
        self.videos
            .iter()
            .map(|v| CorpusFile {
                url: v.url(),
                bytes: v.bytes,
            })
            .collect()
    }

    /// The requests for the load generator, in order.
    ///
    /// ```
    /// use vibra_lab::workload::youtube::YouTubeModel;
    /// let w = YouTubeModel { videos: 5, requests: 9, ..YouTubeModel::SECTION_3_5_4 }.generate(2).unwrap();
    /// let r = w.load_requests();
    /// assert_eq!(r.len(), 9);
    /// assert_eq!(r[0].target, w.videos[w.requests[0] as usize].url());
    /// ```
    pub fn load_requests(&self) -> Vec<Request> {
        self.requests
            .iter()
            .map(|&i| {
                let v = &self.videos[i as usize];
                Request {
                    target: v.url(),
                    bytes: v.bytes,
                }
            })
            .collect()
    }

    /// Bytes of one copy of the catalogue.
    ///
    /// ```
    /// use vibra_lab::workload::youtube::YouTubeModel;
    /// let w = YouTubeModel { videos: 5, requests: 1, ..YouTubeModel::SECTION_3_5_4 }.generate(2).unwrap();
    /// assert_eq!(w.corpus_bytes(), w.videos.iter().map(|v| v.bytes).sum::<u64>());
    /// ```
    pub fn corpus_bytes(&self) -> u64 {
        self.videos.iter().map(|v| v.bytes).sum()
    }

    /// Bytes all the requests transfer.
    ///
    /// ```
    /// use vibra_lab::workload::youtube::YouTubeModel;
    /// let w = YouTubeModel { videos: 1, requests: 3, ..YouTubeModel::SECTION_3_5_4 }.generate(2).unwrap();
    /// assert_eq!(w.transfer_bytes(), 3 * w.videos[0].bytes);
    /// ```
    pub fn transfer_bytes(&self) -> u64 {
        self.requests
            .iter()
            .map(|&i| self.videos[i as usize].bytes)
            .sum()
    }
}

/// YouTube's ID alphabet.
const ID_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn random_id(rng: &mut ChaCha8Rng) -> String {
    (0..11)
        .map(|_| ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())] as char)
        .collect()
}

/// Redraws from `d` until the value is in `lo..=hi`.
fn truncated<D: Distribution<f64>>(d: &D, rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    loop {
        let x = d.sample(rng);
        if (lo..=hi).contains(&x) {
            return x;
        }
    }
}

/// The three-peak length mixture of the module documentation.
struct LengthModel {
    short: LogNormal<f64>,
    middle: Normal<f64>,
    long: Normal<f64>,
}

impl LengthModel {
    const SHORT_WEIGHT: f64 = 0.30;
    const MIDDLE_WEIGHT: f64 = 0.54;

    fn new() -> Self {
        LengthModel {
            short: LogNormal::new(45f64.ln(), 0.5).expect("constant parameters are valid"),
            middle: Normal::new(190.0, 80.0).expect("constant parameters are valid"),
            long: Normal::new(545.0, 40.0).expect("constant parameters are valid"),
        }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        let u: f64 = rng.random();
        if u < Self::SHORT_WEIGHT {
            truncated(&self.short, rng, MIN_LENGTH_S, MAX_LENGTH_S)
        } else if u < Self::SHORT_WEIGHT + Self::MIDDLE_WEIGHT {
            truncated(&self.middle, rng, MIN_LENGTH_S, MAX_LENGTH_S)
        } else {
            truncated(&self.long, rng, MIN_LENGTH_S, MAX_LENGTH_S)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Least-squares slope of log(frequency) against log(rank) over ranks 1..=`top`.
    fn rank_frequency_slope(w: &YouTubeWorkload, top: usize) -> f64 {
        let mut counts = vec![0u64; w.videos.len()];
        for &r in &w.requests {
            counts[r as usize] += 1;
        }
        let pts: Vec<(f64, f64)> = (0..top)
            .filter(|&i| counts[i] > 0)
            .map(|i| (((i + 1) as f64).ln(), (counts[i] as f64).ln()))
            .collect();
        let n = pts.len() as f64;
        let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
        let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
        let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        sxy / sxx
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn the_same_seed_gives_the_same_workload(seed in any::<u64>()) {
            let m = YouTubeModel { requests: 300, ..YouTubeModel::SECTION_3_5_4 };
            let a = m.generate(seed).unwrap();
            prop_assert_eq!(&a, &m.generate(seed).unwrap());
            prop_assert_ne!(a, m.generate(seed.wrapping_add(1)).unwrap());
        }

        #[test]
        fn every_video_is_within_the_models_bounds(
            seed in any::<u64>(),
            videos in 1usize..400,
            divisor in 1u64..64,
        ) {
            let m = YouTubeModel { videos, requests: 200, size_divisor: divisor, ..YouTubeModel::SECTION_3_5_4 };
            let w = m.generate(seed).unwrap();
            prop_assert_eq!(w.videos.len(), videos);
            let ids: HashSet<&str> = w.videos.iter().map(|v| v.id.as_str()).collect();
            prop_assert_eq!(ids.len(), videos);
            for v in &w.videos {
                prop_assert!((MIN_LENGTH_S..=MAX_LENGTH_S).contains(&v.length_s));
                prop_assert!((MIN_BITRATE_BPS..=MAX_BITRATE_BPS).contains(&v.bitrate_bps));
                let expect = v.length_s * v.bitrate_bps / 8.0 / divisor as f64;
                prop_assert!((v.bytes as f64 - expect).abs() <= 0.5);
                prop_assert!(crate::testbed::servable(v.url().as_bytes()));
                prop_assert_eq!(v.id.len(), 11);
            }
            prop_assert!(w.requests.iter().all(|&r| (r as usize) < videos));
        }

        #[test]
        fn rank_frequency_follows_zipf_056(seed in any::<u64>()) {
            let m = YouTubeModel { requests: 200_000, ..YouTubeModel::SECTION_3_5_4 };
            let slope = rank_frequency_slope(&m.generate(seed).unwrap(), 300);
            prop_assert!((slope + 0.56).abs() < 0.06, "slope {slope}");
        }
    }

    #[test]
    fn a_steeper_law_gives_a_steeper_slope() {
        let m = YouTubeModel {
            requests: 200_000,
            zipf_beta: 1.0,
            ..YouTubeModel::SECTION_3_5_4
        };
        let slope = rank_frequency_slope(&m.generate(5).unwrap(), 300);
        assert!((slope + 1.0).abs() < 0.06, "slope {slope}");
    }

    /// The module documentation's calibration targets from [20], on 20,000 videos.
    #[test]
    fn the_model_matches_its_source() {
        let m = YouTubeModel {
            videos: 20_000,
            requests: 1,
            size_divisor: 1,
            ..YouTubeModel::SECTION_3_5_4
        };
        let w = m.generate(11).unwrap();
        let n = w.videos.len() as f64;
        let share =
            |f: &dyn Fn(&Video) -> bool| w.videos.iter().filter(|v| f(v)).count() as f64 / n;
        let within_600 = share(&|v| v.length_s <= 600.0);
        assert!((0.97..=0.995).contains(&within_600), "{within_600}");
        let under_25mb = share(&|v| v.bytes < 25_000_000);
        assert!((0.96..=0.99).contains(&under_25mb), "{under_25mb}");
        let mean_mb = w.corpus_bytes() as f64 / n / 1e6;
        assert!((7.6..=9.2).contains(&mean_mb), "mean {mean_mb} MB");
        let near_330k = share(&|v| (290_000.0..=370_000.0).contains(&v.bitrate_bps));
        assert!(near_330k > 0.6, "{near_330k}");
        let under_a_minute = share(&|v| v.length_s < 60.0);
        assert!((0.2..=0.35).contains(&under_a_minute), "{under_a_minute}");
    }

    #[test]
    fn the_default_corpus_fits_a_back_end() {
        let w = YouTubeModel::SECTION_3_5_4.generate(1).unwrap();
        let gb = w.corpus_bytes() as f64 / 1e9;
        assert!(gb < 1.0 && gb > 0.3, "{gb} GB per copy");
    }

    #[test]
    fn bad_parameters_are_refused() {
        let base = YouTubeModel::SECTION_3_5_4;
        for m in [
            YouTubeModel { videos: 0, ..base },
            YouTubeModel {
                size_divisor: 0,
                ..base
            },
            YouTubeModel {
                zipf_beta: -1.0,
                ..base
            },
            YouTubeModel {
                zipf_beta: f64::INFINITY,
                ..base
            },
        ] {
            assert!(matches!(m.generate(1), Err(LabError::BadArgument { .. })));
        }
    }
}
