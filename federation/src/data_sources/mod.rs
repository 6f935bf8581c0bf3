//! The data-source registration API: records stored in the main database, a status
//! machine per source, host rules for where sources may live, and the resources that
//! expose it all.

mod hosts;
mod registry;
mod resource;

pub use hosts::HostPolicy;
pub use registry::{Registry, mask_secrets, mask_url};
pub use resource::define;
