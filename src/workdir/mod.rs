//! The work folder's bookkeeping: files that appear whole or not at all, one writer per
//! folder, the records of finished units and what they depended on, and stop requests that
//! keep what is finished.

pub mod atomic;
pub mod direct;
pub mod interrupt;
pub mod lock;
pub mod state;
