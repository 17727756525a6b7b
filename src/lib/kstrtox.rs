// SPDX-License-Identifier: GPL-2.0-only
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
mod tests;
