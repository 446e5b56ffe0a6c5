//! One binary, two lives: `/init` of rivet's initramfs (PID 1), or a
//! command-line tool on a host. Actions that choose disks on their own or
//! power the machine off happen only as PID 1.

mod cli;

fn main() {
    if std::process::id() == 1 {
        rivet::linux::pid1::main(rivet::agent::run);
    }
    rivet::linux::logger::init(log::LevelFilter::Info);
    if let Err(e) = cli::run(std::env::args().skip(1).collect()) {
        eprintln!("rivet: error: {e}");
        std::process::exit(1);
    }
}
