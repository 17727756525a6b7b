// SPDX-License-Identifier: GPL-2.0-only
//! Host unit tests of `kstrtox` (`cargo htest`), kept apart so that the
//! algorithm file reads as the algorithm.

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
