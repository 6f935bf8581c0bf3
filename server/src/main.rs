//! `manifold`: the service binary, the built-in plugins and nothing else
//! ([`manifold_server::Manifold`] builds one with more).

mod allocator;

#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;

fn main() -> std::process::ExitCode {
    manifold_server::auth::release_memory_with(allocator::collect_now);
    // A hook returns a large request's memory to the system once each thread is idle.
    manifold_server::Manifold::builder()
        .on_thread_park(allocator::collect_if_due)
        .run()
}
