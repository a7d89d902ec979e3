//! Go's `sort.Search`, which the client uses on lists it does not sort first (an IAVL range
//! proof's leaves, a validator set read off the wire), so its exact bisection matters.

/// The first index in `0..n` where `f` holds, as Go's bisection finds it (assuming `f` is
/// false then true; when it is not, whatever the bisection lands on).
pub(super) fn search(n: usize, f: impl Fn(usize) -> bool) -> usize {
    let (mut i, mut j) = (0, n);
    while i < j {
        let h = i + (j - i) / 2;
        if f(h) {
            j = h;
        } else {
            i = h + 1;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On an unsorted list the bisection may miss an element a scan would find.
    #[test]
    fn bisects_like_go() {
        let sorted = [1, 3, 5, 7];
        assert_eq!(search(4, |i| sorted[i] >= 5), 2);
        assert_eq!(search(4, |i| sorted[i] >= 8), 4);
        let unsorted = [9, 1, 2, 3];
        // Probes index 2 (2 >= 9 fails), then 3: lands past the 9 at index 0.
        assert_eq!(search(4, |i| unsorted[i] >= 9), 4);
    }
}
