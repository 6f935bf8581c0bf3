//! The data-source registration API: records stored in the main database, a status
//! machine per source, host rules for where sources may live, and the resources that
//! expose it all.

mod hosts;
mod registry;
mod resource;
mod secrets;

pub use hosts::HostPolicy;
pub use registry::Registry;
pub use resource::define;
pub use secrets::{mask_secrets, mask_url};
