//! The data-source registration API: records stored in the main database, a status
//! machine per source (this replica's), host rules for where sources may live, the
//! resources that expose it all, and the changes other replicas make to it.

mod hosts;
mod propagation;
mod registry;
mod resource;
mod secrets;

pub use hosts::HostPolicy;
pub use registry::Registry;
pub use resource::define;
pub use secrets::{mask_secrets, mask_url};
