//! Load from wrk, pinned to the other core, and what it reports.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{RunArgs, fail, output};

/// One wrk run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sample {
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) errors: u64,
}

pub(crate) fn parse_ms(text: &str) -> f64 {
    let t = text.trim();
    let (number, scale) = if let Some(v) = t.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = t.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = t.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (t, 1.0)
    };
    number.parse::<f64>().unwrap_or(0.0) * scale
}

/// curl, silent, with a deadline: a server that hangs fails the measurement instead
/// of the whole run.
pub(crate) fn curl() -> Command {
    let mut command = Command::new("curl");
    command.args(["-s", "-m", "60"]);
    command
}

/// A wrk script: the method, and a `Cookie` header that cycles through `cookies`
/// request by request (requests are formatted once, in `init`).
pub(crate) fn script(path: &Path, post: bool, cookies: &[String]) -> PathBuf {
    let mut lua = String::new();
    if post {
        lua.push_str("wrk.method = \"POST\"\n");
    }
    if !cookies.is_empty() {
        lua.push_str("local cookies = {\n");
        for cookie in cookies {
            let _ = writeln!(lua, "  \"{cookie}\",");
        }
        lua.push_str(
            "}\nlocal requests = {}\nlocal i = 0\n\
             init = function(args)\n  \
               for n, c in ipairs(cookies) do requests[n] = wrk.format(nil, nil, { [\"Cookie\"] = c }) end\n\
             end\n\
             request = function()\n  i = i % #requests + 1\n  return requests[i]\nend\n",
        );
    }
    std::fs::write(path, lua).unwrap_or_else(|e| fail(&format!("writing {}: {e}", path.display())));
    path.to_owned()
}

pub(crate) fn wrk(url: &str, args: &RunArgs, script: &Path) -> Sample {
    let mut command = Command::new("taskset");
    command
        .args(["-c", "1", "wrk", "-t1", "--latency"])
        .arg(format!("-c{}", args.connections))
        .arg(format!("-d{}s", args.seconds))
        .arg("-s")
        .arg(script);
    let text = output(command.arg(url));
    let mut sample = Sample::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => sample.rps = v.parse().unwrap_or(0.0),
            ["50%", v] => sample.p50_ms = parse_ms(v),
            ["99%", v] => sample.p99_ms = parse_ms(v),
            ["Non-2xx", "or", "3xx", "responses:", v] => {
                sample.errors += v.parse::<u64>().unwrap_or(0);
            }
            ["Socket", "errors:", rest @ ..] => {
                sample.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    if sample.rps == 0.0 {
        fail(&format!("wrk measured nothing at {url}:\n{text}"));
    }
    sample
}
