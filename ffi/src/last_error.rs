//! This thread's last error message: the boundary records it ([`set`]) and `vibra_last_error`
//! (module `message`) copies it out ([`with`]).
//!
//! Every failing call replaces the message of its thread; successful calls leave it alone (like
//! `errno`). Messages never contain a NUL byte, so C can treat them as strings.
//!
//! A leaf module: it imports nothing from the crate, so that the boundary can record a message
//! without depending on the code that writes it into a C buffer.
//!
//! Both functions reach the thread-local with `LocalKey::try_with`, never `with`: a C program
//! may call libvibra from a destructor that runs while its thread is torn down (a pthread key
//! destructor, or another thread-local's `Drop`), after this slot has been destroyed. `with`
//! would panic there, and a panic during thread teardown aborts the process, boundary or not.
//! With `try_with` such a call records nothing (no one can read it any more) and reads "".

use std::cell::RefCell;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Replaces this thread's message. NUL bytes (which may come from a caller's data quoted in a
/// message) are written as `\0` so C sees the whole message. During thread teardown, once the
/// slot is destroyed, does nothing.
pub(crate) fn set(message: &str) {
    // An error means the slot is already destroyed: nothing on this thread can read it again.
    let _ = LAST_ERROR.try_with(|last| {
        let mut last = last.borrow_mut();
        last.clear();
        last.push_str(&message.replace('\0', "\\0"));
    });
}

/// Calls `f` with this thread's message ("" when no call failed yet, or during thread teardown
/// once the slot is destroyed).
pub(crate) fn with<R>(f: impl Fn(&str) -> R) -> R {
    LAST_ERROR
        .try_with(|last| f(&last.borrow()))
        .unwrap_or_else(|_| f(""))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::sync::mpsc::{Sender, channel};

    use super::*;

    /// On drop, sets and reads a message, and reports whether the slot was already destroyed,
    /// and what was read.
    struct SetsOnDrop(Sender<(bool, String)>);

    impl Drop for SetsOnDrop {
        fn drop(&mut self) {
            let destroyed = LAST_ERROR.try_with(|_| ()).is_err();
            set("recorded during thread teardown");
            let read = with(str::to_owned);
            // The receiver outlives the thread: the test waits for this.
            let _ = self.0.send((destroyed, read));
        }
    }

    thread_local! {
        static SETS_ON_DROP: RefCell<Option<SetsOnDrop>> = const { RefCell::new(None) };
    }

    /// A thread-local's destructor sets (and reads) the message after `LAST_ERROR` itself has
    /// been destroyed: with `LocalKey::with` this panics inside a thread-local destructor, which
    /// aborts the test process.
    #[test]
    fn setting_a_message_during_thread_teardown_does_not_panic() {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            // Thread-locals are destroyed in the reverse order of their first use, so this one,
            // used first, is destroyed after LAST_ERROR (used by `set` below).
            SETS_ON_DROP.with(|s| *s.borrow_mut() = Some(SetsOnDrop(tx)));
            set("recorded while the thread runs");
            assert_eq!(with(str::to_owned), "recorded while the thread runs");
        })
        .join()
        .expect("the thread and its teardown finish without a panic");
        let (destroyed, read) = rx.recv().expect("the destructor ran");
        assert!(
            destroyed,
            "LAST_ERROR must already be destroyed when the destructor runs, or this test \
             does not exercise teardown"
        );
        assert_eq!(read, "", "a destroyed slot reads as empty");
    }

    #[test]
    fn set_replaces_the_message_and_escapes_nul() {
        std::thread::spawn(|| {
            assert_eq!(with(str::to_owned), "");
            set("first");
            set("a\0b");
            assert_eq!(with(str::to_owned), "a\\0b");
        })
        .join()
        .unwrap();
    }
}
