//! String to number conversions for boot parameters (Linux: lib/kstrtox.c).

/// Linux's `kstrtobool`: the spellings a boolean boot or module parameter
/// accepts.
pub fn kstrtobool(s: &str) -> Option<bool> {
    match s {
        "1" | "y" | "Y" | "yes" | "on" | "true" => Some(true),
        "0" | "n" | "N" | "no" | "off" | "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::kstrtobool;

    #[test]
    fn kstrtobool_takes_linux_spellings_only() {
        for t in ["1", "y", "Y", "yes", "on", "true"] {
            assert_eq!(kstrtobool(t), Some(true), "{t}");
        }
        for f in ["0", "n", "N", "no", "off", "false"] {
            assert_eq!(kstrtobool(f), Some(false), "{f}");
        }
        for bad in ["", "2", "On ", "truee", "-1"] {
            assert_eq!(kstrtobool(bad), None, "{bad:?}");
        }
    }
}
