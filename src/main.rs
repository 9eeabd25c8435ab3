//! The `maildns` command.

fn main() {
    std::process::exit(maildns::cli::main());
}
