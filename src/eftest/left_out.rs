//! The tests `ef-test` leaves out, each with the reason it cannot apply to an executor. The
//! runner reports them as skipped. At most 0.1 % of a suite may be here.

/// A test left out, by its exact name, and why.
#[derive(Debug, Clone, Copy)]
pub struct LeftOut {
    /// The test's name as its fixture file keys it.
    pub name: &'static str,
    /// Why it cannot pass on an executor.
    pub reason: &'static str,
}

/// Every test left out.
pub const LEFT_OUT: &[LeftOut] = &[];

/// The entry for the test `name`, if it is left out.
pub fn left_out(name: &str) -> Option<&'static LeftOut> {
    LEFT_OUT.iter().find(|entry| entry.name == name)
}
