//! The configured server order behind a sorted backend set, and the failover order of a URL in
//! it. Pure: no Pingora type, so it is built and tested without the `pingora` feature.

use vibra_hash::{Availability, Dispatcher, Error, HashKind};

/// Servers numbered in their *configured* order (SPEC section 11), however the caller's set
/// sorts them, and each URL's failover order over them: its sub-namespace `i` first, then
/// `i + 1, ..., N - 1, 0, ..., i - 1`, skipping configured servers absent from the set.
///
/// Skipping an absent server instead of renumbering keeps every other server's URLs where they
/// were (SPEC section 3's failure-skip rule): a server dropped by discovery moves only its own
/// URLs. Items in the set but not in the configured list are numbered after it, in the set's
/// order.
///
/// ```
/// use vibra_hash::HashKind;
/// use vibra_pingora::FailoverOrder;
///
/// // Configured c, a, b; the set arrives sorted (a, b, c) and without b.
/// let order = FailoverOrder::new(&["c", "a", "b"], ["a", "c"], |s| *s, HashKind::Charsum)?;
/// assert_eq!(order.servers(), 3);
/// assert_eq!(order.server(0), Some(&"c"));
/// assert_eq!(order.server(2), None); // b: configured, absent
/// // charsum("/") = 47, 47 mod 3 = 2: b first, absent, so c, then a.
/// assert_eq!(order.failover(b"/").collect::<Vec<_>>(), vec![&"c", &"a"]);
/// # Ok::<(), vibra_hash::Error>(())
/// ```
#[derive(Debug)]
pub struct FailoverOrder<T> {
    slots: Vec<Option<T>>,
    present: Availability,
    /// Used for [`Dispatcher::namespace`] only (key extraction and hash, SPEC 1-2).
    dispatcher: Dispatcher,
}

impl<T> FailoverOrder<T> {
    /// Numbers `items` by the position of `key(item)` in `configured`; unlisted items follow
    /// in the order given.
    ///
    /// # Errors
    /// [`Error::InvalidServerCount`] when there is no server at all or more than
    /// [`Dispatcher::MAX_SERVERS`].
    ///
    /// ```
    /// use vibra_pingora::FailoverOrder;
    /// let none: [&str; 0] = [];
    /// assert!(FailoverOrder::new(&none, none, |s| *s, vibra_hash::HashKind::Fast).is_err());
    /// ```
    pub fn new<K: PartialEq>(
        configured: &[K],
        items: impl IntoIterator<Item = T>,
        key: impl Fn(&T) -> K,
        hash: HashKind,
    ) -> Result<Self, Error> {
        let mut slots: Vec<Option<T>> = configured.iter().map(|_| None).collect();
        for item in items {
            let k = key(&item);
            match configured.iter().position(|c| *c == k) {
                Some(p) if slots[p].is_none() => slots[p] = Some(item),
                Some(_) => {} // a duplicate of a configured server: the first one holds its place
                None => slots.push(Some(item)),
            }
        }
        let flags: Vec<bool> = slots.iter().map(Option::is_some).collect();
        let present = Availability::from_flags(&flags)?;
        if present.count() == 0 {
            return Err(Error::InvalidServerCount {
                servers: 0,
                max: Dispatcher::MAX_SERVERS as usize,
            });
        }
        let dispatcher = Dispatcher::new(present.servers(), 1, hash)?;
        Ok(FailoverOrder {
            slots,
            present,
            dispatcher,
        })
    }

    /// N: the configured servers plus any unlisted ones.
    ///
    /// ```
    /// # use vibra_pingora::FailoverOrder;
    /// let o = FailoverOrder::new(&[1, 2], [3, 1], |x| *x, vibra_hash::HashKind::Fast)?;
    /// assert_eq!(o.servers(), 3);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn servers(&self) -> u32 {
        self.present.servers()
    }

    /// Server `s`, when it is present in the set.
    ///
    /// ```
    /// # use vibra_pingora::FailoverOrder;
    /// let o = FailoverOrder::new(&[1, 2], [2], |x| *x, vibra_hash::HashKind::Fast)?;
    /// assert_eq!((o.server(0), o.server(1), o.server(9)), (None, Some(&2), None));
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn server(&self, s: u32) -> Option<&T> {
        self.slots.get(s as usize).and_then(Option::as_ref)
    }

    /// The sub-namespace of an HTTP request-target (SPEC sections 1-2), as `vibra-lab map`
    /// prints it for N servers.
    ///
    /// ```
    /// # use vibra_pingora::FailoverOrder;
    /// let o = FailoverOrder::new(&[0, 1, 2, 3], 0..4, |x| *x, vibra_hash::HashKind::Charsum)?;
    /// assert_eq!(o.namespace(b"/?q"), 3); // 47 mod 4
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn namespace(&self, target: &[u8]) -> u32 {
        self.dispatcher.namespace(target)
    }

    /// Every present server in `target`'s failover order.
    ///
    /// ```
    /// # use vibra_pingora::FailoverOrder;
    /// let o = FailoverOrder::new(&[0, 1, 2, 3], [0, 1, 3], |x| *x, vibra_hash::HashKind::Charsum)?;
    /// assert_eq!(o.failover(b"/").copied().collect::<Vec<_>>(), vec![3, 0, 1]);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn failover(&self, target: &[u8]) -> impl Iterator<Item = &T> + '_ {
        let mut cursor = self.cursor(target);
        std::iter::from_fn(move || cursor.next(self))
    }

    /// A [`Cursor`] at the start of `target`'s failover order: the same walk as
    /// [`failover`](Self::failover), for an iterator that owns its `FailoverOrder` through an
    /// `Arc` (Pingora's `BackendIter`).
    ///
    /// ```
    /// # use vibra_pingora::FailoverOrder;
    /// let o = FailoverOrder::new(&[0, 1], 0..2, |x| *x, vibra_hash::HashKind::Charsum)?;
    /// let mut c = o.cursor(b"/"); // 47 mod 2 = 1
    /// assert_eq!((c.next(&o), c.next(&o), c.next(&o)), (Some(&1), Some(&0), None));
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn cursor(&self, target: &[u8]) -> Cursor {
        Cursor {
            from: self.namespace(target),
            left: self.present.count(),
        }
    }
}

/// A position in one URL's failover order ([`FailoverOrder::cursor`]). It borrows nothing, so
/// it can live beside the `Arc` that owns its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    from: u32,
    left: u32,
}

impl Cursor {
    /// The next present server of the failover order, `None` after the last.
    ///
    /// ```
    /// # use vibra_pingora::FailoverOrder;
    /// let o = FailoverOrder::new(&[7], [7], |x| *x, vibra_hash::HashKind::Fast)?;
    /// let mut c = o.cursor(b"/");
    /// assert_eq!((c.next(&o), c.next(&o)), (Some(&7), None));
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn next<'a, T>(&mut self, order: &'a FailoverOrder<T>) -> Option<&'a T> {
        if self.left == 0 {
            return None;
        }
        let s = order.present.iter_from(self.from).next()?;
        self.left -= 1;
        self.from = if s + 1 == order.servers() { 0 } else { s + 1 };
        order.server(s)
    }
}
