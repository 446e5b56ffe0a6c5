//! A small `--flag VALUE` parser: enough for rivet's subcommands without a
//! dependency that would double the binary.

use std::collections::BTreeMap;

pub struct Args {
    values: BTreeMap<String, Vec<String>>,
    pub help: bool,
}

impl Args {
    /// `takes_value` lists the accepted options (without `--`); `switches`
    /// the accepted options without a value.
    pub fn parse(
        argv: Vec<String>,
        takes_value: &[&str],
        switches: &[&str],
    ) -> Result<Args, String> {
        let mut args = Args {
            values: BTreeMap::new(),
            help: false,
        };
        let mut it = argv.into_iter();
        while let Some(arg) = it.next() {
            if arg == "--help" || arg == "-h" {
                args.help = true;
                continue;
            }
            let Some(flag) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument '{arg}'"));
            };
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            if switches.contains(&name) {
                args.values
                    .entry(name.to_string())
                    .or_default()
                    .push(String::new());
            } else if takes_value.contains(&name) {
                let value = match inline {
                    Some(v) => v,
                    None => it.next().ok_or_else(|| format!("--{name} needs a value"))?,
                };
                args.values.entry(name.to_string()).or_default().push(value);
            } else {
                return Err(format!("unknown option '--{name}'"));
            }
        }
        Ok(args)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.values
            .get(name)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format!("--{name} is required"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn values_switches_and_errors() {
        let a = Args::parse(
            argv("--out x --modules a,b --modules=c --quiet"),
            &["out", "modules"],
            &["quiet"],
        )
        .unwrap();
        assert_eq!(a.get("out"), Some("x"));
        assert_eq!(a.all("modules"), vec!["a,b", "c"]);
        assert_eq!(a.get("quiet"), Some(""));
        assert!(!a.help);
        assert_eq!(
            Args::parse(argv("--out"), &["out"], &[]).err().unwrap(),
            "--out needs a value"
        );
        assert_eq!(
            Args::parse(argv("--bogus 1"), &["out"], &[]).err().unwrap(),
            "unknown option '--bogus'"
        );
        assert_eq!(
            Args::parse(argv("stray"), &["out"], &[]).err().unwrap(),
            "unexpected argument 'stray'"
        );
        assert!(Args::parse(argv("-h"), &[], &[]).unwrap().help);
    }
}
