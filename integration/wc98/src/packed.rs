//! The URL list packed into one buffer, for benchmarks: every URL's bytes back to back with
//! their spans beside them, as a proxy's request buffers would be hot in cache, so that every
//! contestant pays the same, small memory cost per URL.

/// URLs packed into one contiguous buffer.
///
/// ```
/// let packed = wc98::PackedUrls::pack(&[b"/a".to_vec(), b"/bc?x".to_vec()]);
/// assert_eq!(packed.len(), 2);
/// assert_eq!(packed.get(1), b"/bc?x");
/// assert_eq!(packed.iter().collect::<Vec<_>>(), [&b"/a"[..], &b"/bc?x"[..]]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackedUrls {
    bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl PackedUrls {
    /// Packs `urls` in order, byte for byte.
    ///
    /// ```
    /// assert!(wc98::PackedUrls::pack(&[]).is_empty());
    /// ```
    pub fn pack(urls: &[Vec<u8>]) -> Self {
        let mut bytes = Vec::with_capacity(urls.iter().map(Vec::len).sum());
        let spans = urls
            .iter()
            .map(|u| {
                let start = bytes.len();
                bytes.extend_from_slice(u);
                (start, bytes.len())
            })
            .collect();
        PackedUrls { bytes, spans }
    }

    /// How many URLs.
    ///
    /// ```
    /// assert_eq!(wc98::PackedUrls::pack(&[b"/".to_vec()]).len(), 1);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there is no URL.
    ///
    /// ```
    /// assert!(!wc98::PackedUrls::pack(&[b"/".to_vec()]).is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// URL `i`.
    ///
    /// # Panics
    /// When `i >= len()`.
    ///
    /// ```
    /// assert_eq!(wc98::PackedUrls::pack(&[b"/x".to_vec()]).get(0), b"/x");
    /// ```
    // Benchmarks time loops over this call: it must inline across crates.
    #[inline(always)]
    #[must_use]
    pub fn get(&self, i: usize) -> &[u8] {
        let (a, b) = self.spans[i];
        &self.bytes[a..b]
    }

    /// The URLs in order.
    ///
    /// ```
    /// assert_eq!(wc98::PackedUrls::pack(&[b"/x".to_vec()]).iter().count(), 1);
    /// ```
    #[inline(always)]
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.spans.iter().map(|&(a, b)| &self.bytes[a..b])
    }
}
