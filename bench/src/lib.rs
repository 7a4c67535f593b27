//! orderhub-bench: a load generator that speaks GraphQL over HTTP and graphql-transport-ws,
//! so it measures orderhub and any other server with the same API the same way, and the
//! wire-limit baseline server it is compared with.

pub mod client;
pub mod fanout;
pub mod frame;
pub mod histogram;
pub mod idle;
pub mod reader;
pub mod server_stats;
pub mod setup;
pub mod storm;
pub mod tracker;
pub mod wire;

/// Raises the soft limit on open files to the hard limit: the generator holds one
/// descriptor per simulated client.
pub fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}
