//! The `orrery` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    orrery::cli::run()
}
