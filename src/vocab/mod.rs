//! The shared vocabulary: types that several layers speak (plan validates them, the engine sequences them,
//! hooks execute them). Nothing here does I/O or imports from the layers above.

pub mod duration;
pub mod hook;
