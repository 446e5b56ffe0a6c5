//! Passes linker/link-args to the rivet binary (see linker/README.md).

fn main() {
    println!("cargo:rerun-if-changed=linker/link-args");
    let args = std::fs::read_to_string("linker/link-args").expect("linker/link-args");
    for line in args.lines().map(str::trim) {
        if !line.is_empty() && !line.starts_with('#') {
            println!("cargo:rustc-link-arg-bins={line}");
        }
    }
}
