//! `wrenn`: the command-line tool of Wrenn (see the crate's README).

fn main() {
    std::process::exit(wrenn_cli::main());
}
