//! The live display of `wrenn template build`.

use super::{Build, LogEntry, Sink, Step};
use crate::error::Result;
use crate::{output, terminal};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::Duration;

/// The live display of `wrenn template build`: step headers and log lines; with a terminal
/// on stderr, a spinner line showing the current step i/n and its instruction (log lines
/// are printed above it, whole lines only, so the spinner never cuts one).
pub struct Progress {
    json: bool,
    bar: Option<ProgressBar>,
    steps: Vec<Step>,
    /// Steps shown on the spinner.
    current: HashSet<usize>,
    /// Steps introduced by a line, ours or a system message of the build.
    headed: HashSet<usize>,
    /// Unfinished lines per stream, while the spinner is drawn.
    partial: BTreeMap<String, String>,
}

impl Progress {
    pub fn new(build: &Build, json: bool) -> Self {
        let bar = (!json && terminal::stderr_is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {wide_msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(format!("build {}", build.id));
            bar.set_message(build.status.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if !json && bar.is_none() {
            eprintln!("build {} {}", build.id, build.status);
        }
        Self {
            json,
            bar,
            steps: build.steps.clone(),
            current: HashSet::new(),
            headed: HashSet::new(),
            partial: BTreeMap::new(),
        }
    }

    /// Prints outside the spinner.
    fn print(&self, stderr: bool, text: &str) -> Result<()> {
        let write = || -> Result<()> {
            if stderr {
                let mut err = std::io::stderr().lock();
                err.write_all(text.as_bytes())?;
                err.flush()?;
                Ok(())
            } else {
                output::out(text)
            }
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    /// Shows step `index` as the current one on the spinner (once).
    fn current(&mut self, index: usize) {
        if self.json || !self.current.insert(index) {
            return;
        }
        if let Some(bar) = &self.bar {
            let total = self.steps.len().max(index + 1);
            bar.set_prefix(format!("[{}/{total}]", index + 1));
            bar.set_message(self.describe(index));
        }
    }

    fn describe(&self, index: usize) -> String {
        self.steps
            .iter()
            .find(|s| s.index == index)
            .map(Step::describe)
            .unwrap_or_default()
    }

    /// A `Step i/n: ...` line before a step's first output, unless the build's own system
    /// messages already introduced the step.
    fn header(&mut self, index: usize) -> Result<()> {
        if self.json || !self.headed.insert(index) {
            return Ok(());
        }
        self.flush_partial()?;
        let total = self.steps.len().max(index + 1);
        let what = self.describe(index);
        self.print(true, &format!("Step {}/{total}: {what}\n", index + 1))
    }

    fn flush_partial(&mut self) -> Result<()> {
        let partial = std::mem::take(&mut self.partial);
        for (stream, text) in partial {
            if !text.is_empty() {
                self.print(stream == "stderr", &format!("{text}\n"))?;
            }
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<()> {
        self.flush_partial()?;
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        Ok(())
    }
}

impl Sink for Progress {
    fn log(&mut self, entry: &LogEntry, _raw: &str) -> Result<()> {
        if self.json {
            return Ok(());
        }
        if let Some(step) = entry.step {
            self.current(step);
        }
        let stderr = entry.stream == "stderr";
        if entry.stream == "system" {
            if let Some(step) = entry.step {
                self.headed.insert(step);
            }
            self.flush_partial()?;
            return self.print(true, &format!("==> {}\n", entry.data.trim_end()));
        }
        if let Some(step) = entry.step {
            self.header(step)?;
        }
        if self.bar.is_none() {
            return self.print(stderr, &entry.data);
        }
        // Whole lines only while the spinner is drawn.
        let buffer = self.partial.entry(entry.stream.clone()).or_default();
        buffer.push_str(&entry.data);
        if let Some(end) = buffer.rfind('\n') {
            let complete: String = buffer.drain(..=end).collect();
            self.print(stderr, &complete)?;
        }
        Ok(())
    }

    fn status(&mut self, build: &Build) -> Result<()> {
        if !build.steps.is_empty() {
            self.steps = build.steps.clone();
        }
        let running: Vec<usize> = self
            .steps
            .iter()
            .filter(|s| s.status == "running")
            .map(|s| s.index)
            .collect();
        for index in running {
            self.current(index);
        }
        if let Some(bar) = &self.bar {
            if self.current.is_empty() {
                bar.set_message(build.status.clone());
            }
        }
        Ok(())
    }
}
