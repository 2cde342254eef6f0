//! Entry point: all behaviour lives in the library so tests exercise the real thing.

fn main() -> std::process::ExitCode {
    skan_receiver::cli::run()
}
