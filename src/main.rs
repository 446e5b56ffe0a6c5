//! One binary, two lives: `/init` of rivet's initramfs (PID 1), or a
//! command-line tool on a host. Actions that choose disks on their own or
//! power the machine off happen only as PID 1.

mod cli;

fn main() {
    if std::process::id() == 1 {
        rivet::linux::pid1::main(rivet::agent::run);
    }
    // RIVET_LOG=debug|trace shows the network stack's and the deploy's
    // detail on a host, as rivet.loglevel= does in PID 1.
    let level = std::env::var("RIVET_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Info);
    rivet::linux::logger::init(level);
    if let Err(e) = cli::run(std::env::args().skip(1).collect()) {
        eprintln!("rivet: error: {e}");
        std::process::exit(1);
    }
}

/// The unwinder's entry points, for the release binary (musl): rivet is
/// built with `panic = "abort"` and without unwind tables (linker/), so
/// nothing can unwind, yet std's backtrace printer and its personality
/// routine still name libunwind's functions, and linking them pulls in
/// ~30 KB of DWARF interpreter. Defining them here keeps libunwind out:
/// a backtrace has no frames (as it had none without the tables) and any
/// attempt to raise an exception aborts, as panic = "abort" does anyway.
#[cfg(all(target_env = "musl", not(debug_assertions)))]
mod no_unwinder {
    use std::ffi::{c_int, c_void};

    type Context = *mut c_void;
    /// _URC_END_OF_STACK
    const END_OF_STACK: c_int = 5;

    #[no_mangle]
    extern "C" fn _Unwind_Backtrace(_trace: *mut c_void, _arg: *mut c_void) -> c_int {
        END_OF_STACK
    }
    #[no_mangle]
    extern "C" fn _Unwind_GetIP(_ctx: Context) -> usize {
        0
    }
    #[no_mangle]
    extern "C" fn _Unwind_GetIPInfo(_ctx: Context, _before: *mut c_int) -> usize {
        0
    }
    #[no_mangle]
    extern "C" fn _Unwind_GetCFA(_ctx: Context) -> usize {
        0
    }
    #[no_mangle]
    extern "C" fn _Unwind_FindEnclosingFunction(_pc: *mut c_void) -> *mut c_void {
        std::ptr::null_mut()
    }
    #[no_mangle]
    extern "C" fn _Unwind_GetLanguageSpecificData(_ctx: Context) -> *mut c_void {
        std::ptr::null_mut()
    }
    #[no_mangle]
    extern "C" fn _Unwind_GetRegionStart(_ctx: Context) -> usize {
        0
    }
    #[no_mangle]
    extern "C" fn _Unwind_GetTextRelBase(_ctx: Context) -> usize {
        0
    }
    #[no_mangle]
    extern "C" fn _Unwind_GetDataRelBase(_ctx: Context) -> usize {
        0
    }
    #[no_mangle]
    extern "C" fn _Unwind_SetGR(_ctx: Context, _index: c_int, _value: usize) {}
    #[no_mangle]
    extern "C" fn _Unwind_SetIP(_ctx: Context, _value: usize) {}
    #[no_mangle]
    extern "C" fn _Unwind_RaiseException(_exception: *mut c_void) -> c_int {
        std::process::abort()
    }
    #[no_mangle]
    extern "C" fn _Unwind_Resume(_exception: *mut c_void) -> ! {
        std::process::abort()
    }
    #[no_mangle]
    extern "C" fn _Unwind_DeleteException(_exception: *mut c_void) {}
}
