//! Passes linker/link-args to the rivet binary (see linker/README.md).

fn main() {
    println!("cargo:rerun-if-changed=linker/link-args");
    let args = std::fs::read_to_string("linker/link-args").expect("linker/link-args");
    for line in args.lines().map(str::trim) {
        if !line.is_empty() && !line.starts_with('#') {
            println!("cargo:rustc-link-arg-bins={line}");
        }
    }
    // Release builds for musl only: dev builds unwind (panic = "unwind"),
    // and static glibc needs its unwind tables at start.
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let musl = std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("musl");
    println!("cargo:rerun-if-changed=linker/no-unwind-tables.ld");
    if release && musl {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{dir}/linker/no-unwind-tables.ld");
        println!("cargo:rustc-link-arg-bins=-Wl,--no-eh-frame-hdr");
    }
}
