//! The shared vocabulary: types that several layers speak (plan, engine, labels, retention, cluster), defined
//! once at the bottom so imports point down.

pub mod retention;
pub mod scope;
