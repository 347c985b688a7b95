//! The process log's output path: the text line format and the writer that batches lines to
//! stdout. Both exist for the request path's cost; what they write is what `tracing-subscriber`'s
//! default text format writes.
//!
//! - [`TextFormat`] writes the default format's line (`<timestamp> <LEVEL> <target>: <fields>`)
//!   without its generic machinery: no style painting when colours are off, one escape scan per
//!   message instead of one formatter per character. Events the lean path does not cover (inside
//!   spans, from the `log` crate, or with colours on) go to the default formatter unchanged.
//! - [`BatchWriter`] appends each line to a shared buffer that one thread writes out, at most
//!   every [`FLUSH_INTERVAL`], so a busy gateway makes one `write` per batch and one wake-up of the
//!   writer thread per batch rather than one per line. A request never waits for stdout, only for
//!   the buffer's lock; when the buffer is far behind (stdout blocked), logging waits for room,
//!   so no line is dropped.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::SystemTime as DefaultTimer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::clock;

/// The text log line of `tracing-subscriber`'s default format, written by a lean path for plain
/// events (see the module docs).
#[derive(Debug, Default)]
pub struct TextFormat {
    fallback: Format<Full, DefaultTimer>,
}

impl<S, N> FormatEvent<S, N> for TextFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // `log` records carry their real target in fields the default format unpacks; a clock
        // outside years 1970 to 9999 has no short timestamp.
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .filter(|since| since.as_secs() < YEAR_10000);
        let Some(since_epoch) = since_epoch.filter(|_| {
            !writer.has_ansi_escapes()
                && event.metadata().target() != "log"
                && context.event_scope().is_none()
        }) else {
            return self.fallback.format_event(context, writer, event);
        };
        let sanitize = writer.sanitizes_ansi_escapes();
        // The line is built in a buffer of this thread and handed to the writer whole: one call
        // through the writer instead of one per piece. A field's `Debug` that logs in turn finds
        // the buffer taken and builds its line in a fresh one.
        LINE.with(|cell| {
            let mut fresh = String::new();
            let mut taken = cell.try_borrow_mut();
            let line = match &mut taken {
                Ok(line) => {
                    line.clear();
                    &mut **line
                }
                Err(_) => &mut fresh,
            };
            write_line(line, since_epoch, event, sanitize)?;
            writer.write_str(line)
        })
    }
}

thread_local! {
    /// The line being built on this thread; its capacity is kept between lines.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Writes the line of `event`, logged `since_epoch`, to `line`.
fn write_line(
    line: &mut String,
    since_epoch: Duration,
    event: &Event<'_>,
    sanitize: bool,
) -> fmt::Result {
    let metadata = event.metadata();
    push_timestamp(line, since_epoch);
    line.push(' ');
    line.push_str(level_text(metadata.level()));
    line.push(' ');
    line.push_str(metadata.target());
    line.push_str(": ");
    let mut fields = LineFields {
        line: &mut *line,
        sanitize,
        empty: true,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    line.push('\n');
    Ok(())
}

/// Appends the UTC time `since_epoch` (before the year 10000) as the default format writes it:
/// `2026-11-29T22:47:51.123456Z`.
fn push_timestamp(line: &mut String, since_epoch: Duration) {
    clock::with_utc_second(since_epoch.as_secs(), |second| {
        // `…:51Z` continues as `…:51.123456Z`.
        line.push_str(second.strip_suffix('Z').unwrap_or(second));
    });
    line.push('.');
    let mut micros = since_epoch.subsec_micros();
    let mut digits = [b'0'; 6];
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    for digit in digits {
        line.push(char::from(digit));
    }
    line.push('Z');
}

/// Seconds from the Unix epoch to the year 10000.
const YEAR_10000: u64 = 253_402_300_800;

/// The level as the default format pads it (five characters, right-aligned).
fn level_text(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// Writes an event's fields as the default format does: the message bare and escaped, every
/// other field `name=<Debug>`, separated by spaces.
struct LineFields<'a> {
    line: &'a mut String,
    sanitize: bool,
    empty: bool,
    result: fmt::Result,
}

impl LineFields<'_> {
    /// Starts a field other than the message: the separator and `name=`. False for the fields the
    /// default format skips (the metadata of `log` records).
    fn start(&mut self, field: &Field) -> Result<bool, fmt::Error> {
        let name = field.name();
        if name.starts_with("log.") {
            return Ok(false);
        }
        self.separate();
        self.line.push_str(name.strip_prefix("r#").unwrap_or(name));
        self.line.push('=');
        Ok(true)
    }

    fn separate(&mut self) {
        if !std::mem::take(&mut self.empty) {
            self.line.push(' ');
        }
    }

    /// Writes `value` with terminal control characters escaped, when the writer sanitizes.
    fn escaped(&mut self, value: fmt::Arguments<'_>) -> fmt::Result {
        if self.sanitize {
            Escaping(&mut *self.line).write_fmt(value)
        } else {
            self.line.write_fmt(value)
        }
    }

    /// Any field as the default format writes it: the message bare and escaped, any other as
    /// `name=<Debug>`.
    fn debug(&mut self, field: &Field, value: &dyn fmt::Debug) -> fmt::Result {
        if field.name() == "message" {
            self.separate();
            self.escaped(format_args!("{value:?}"))
        } else if self.start(field)? {
            write!(self.line, "{value:?}")
        } else {
            Ok(())
        }
    }

    /// A field other than the message whose `Debug` text is `text`.
    fn plain(&mut self, field: &Field, text: &str) -> fmt::Result {
        if self.start(field)? {
            self.line.push_str(text);
        }
        Ok(())
    }

    fn string(&mut self, field: &Field, value: &str) -> fmt::Result {
        if field.name() == "message" {
            // As `debug` writes it, without going through `fmt` for a plain string.
            self.separate();
            return if self.sanitize {
                Escaping(&mut *self.line).write_str(value)
            } else {
                self.line.push_str(value);
                Ok(())
            };
        }
        // `Debug` of a string quotes it and escapes `"`, `\\` and anything not printable ASCII;
        // without those it is the string in quotes.
        let verbatim = value
            .bytes()
            .all(|byte| (b' '..=b'~').contains(&byte) && byte != b'"' && byte != b'\\');
        if !verbatim {
            return self.debug(field, &value);
        }
        if self.start(field)? {
            self.line.push('"');
            self.line.push_str(value);
            self.line.push('"');
        }
        Ok(())
    }

    fn float(&mut self, field: &Field, value: f64) -> fmt::Result {
        // Where `Debug` of an `f64` writes plain decimals, it writes the shortest digits that
        // read back as the same number, as `ryu` does; outside that range it switches to
        // exponents in its own layout.
        let decimal = value == 0.0 || (1e-4..1e15).contains(&value.abs());
        if field.name() == "message" || !decimal {
            return self.debug(field, &value);
        }
        if let Some(thousandths) = whole_thousandths(value) {
            if self.start(field)? {
                push_thousandths(self.line, thousandths);
            }
            return Ok(());
        }
        self.plain(field, ryu::Buffer::new().format_finite(value))
    }

    fn error_chain(
        &mut self,
        field: &Field,
        error: &(dyn std::error::Error + 'static),
    ) -> fmt::Result {
        if field.name() == "message" {
            self.separate();
        } else if !self.start(field)? {
            return Ok(());
        }
        self.escaped(format_args!("{error}"))?;
        let Some(source) = error.source() else {
            return Ok(());
        };
        self.line.push(' ');
        self.line.push_str(field.name());
        self.line.push_str(".sources=[");
        let mut next = Some(source);
        let mut first = true;
        while let Some(error) = next {
            if !first {
                self.line.push_str(", ");
            }
            first = false;
            self.escaped(format_args!("{error}"))?;
            next = error.source();
        }
        self.line.push(']');
        Ok(())
    }
}

impl LineFields<'_> {
    /// Runs `write` unless an earlier field failed; the first failure is kept.
    fn keep(&mut self, write: impl FnOnce(&mut Self) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = write(self);
        }
    }

    /// A number or a boolean whose `Debug` text is `text`. As the message it goes through
    /// `Debug` like any message.
    fn scalar(&mut self, field: &Field, value: &dyn fmt::Debug, text: &str) -> fmt::Result {
        if field.name() == "message" {
            self.debug(field, value)
        } else {
            self.plain(field, text)
        }
    }
}

impl Visit for LineFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.keep(|fields| fields.string(field, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.keep(|fields| fields.scalar(field, &value, itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.keep(|fields| fields.scalar(field, &value, itoa::Buffer::new().format(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.keep(|fields| fields.scalar(field, &value, if value { "true" } else { "false" }));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.keep(|fields| fields.float(field, value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.keep(|fields| fields.error_chain(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.keep(|fields| fields.debug(field, value));
    }
}

/// `value` as a count of thousandths, when it is a whole number of them below 10⁹ (as every
/// `duration_ms` is: whole microseconds over 1000). `Debug` then writes that count as a decimal
/// with at most three decimals (see [`push_thousandths`]): no shorter decimal lies within the
/// number's rounding interval (a shorter one is at least 0.001 away; the interval is narrower than
/// 10⁻⁷ below 10⁹), so the general shortest-digits search can be skipped.
fn whole_thousandths(value: f64) -> Option<u64> {
    // `-0.0` is in the range too, and `Debug` writes its sign.
    if !(0.0..1e9).contains(&value) || value.is_sign_negative() {
        return None;
    }
    let scaled = (value * 1000.0).round();
    // Exactly representable below 10¹²; the division is the one that made `value` if it was.
    (scaled / 1000.0 == value).then_some(scaled as u64)
}

/// Appends `thousandths` / 1000 as `Debug` writes that `f64`: `12.5`, `0.081`, `3.0`.
fn push_thousandths(line: &mut String, thousandths: u64) {
    line.push_str(itoa::Buffer::new().format(thousandths / 1000));
    line.push('.');
    let fraction = thousandths % 1000;
    let digits = [fraction / 100, fraction / 10 % 10, fraction % 10];
    // At least one decimal; no trailing zeros after it.
    let kept = digits
        .iter()
        .rposition(|&digit| digit != 0)
        .map_or(1, |last| last + 1);
    for digit in &digits[..kept] {
        line.push(char::from(b'0' + *digit as u8));
    }
}

/// Escapes the control characters a terminal could act on, as the default format does for
/// messages and errors: ESC, BEL, BS, FF and DEL as `\xNN`, C1 controls as `\u{NN}`.
struct Escaping<'a>(&'a mut String);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // C1 controls (U+0080 to U+009F) start with 0xC2 in UTF-8.
        let plain = !text
            .bytes()
            .any(|byte| matches!(byte, 0x1b | 0x07 | 0x08 | 0x0c | 0x7f | 0xc2));
        if plain {
            return self.0.write_str(text);
        }
        for character in text.chars() {
            match character {
                '\x1b' => self.0.write_str("\\x1b")?,
                '\x07' => self.0.write_str("\\x07")?,
                '\x08' => self.0.write_str("\\x08")?,
                '\x0c' => self.0.write_str("\\x0c")?,
                '\x7f' => self.0.write_str("\\x7f")?,
                '\u{80}'..='\u{9f}' => write!(self.0, "\\u{{{:x}}}", u32::from(character))?,
                _ => self.0.write_char(character)?,
            }
        }
        Ok(())
    }
}

/// At most this long between a line being logged and its write to the output.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(10);
/// A batch this large is written at once, without waiting for the interval.
const EAGER_BYTES: usize = 64 * 1024;
/// Logging waits for the writer when this much is queued (stdout blocked or far behind).
const QUEUE_LIMIT: usize = 8 * 1024 * 1024;

/// A [`MakeWriter`] whose lines one background thread writes out in batches (see the module docs).
#[derive(Debug, Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Writes what is queued and stops the writer thread when dropped; keep it until exit.
#[derive(Debug)]
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// The writer thread waits here for lines.
    lines_queued: Condvar,
    /// Logging threads wait here for room when the queue is full.
    room_made: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    bytes: Vec<u8>,
    /// The writer thread waits for a first line and must be woken for it.
    writer_idle: bool,
    /// Some logging thread waits for room.
    producer_waiting: bool,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue holds bytes and flags; a panic while it was held leaves nothing half-done that
        // a later line could trip on.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl BatchWriter {
    /// Starts the writer thread that writes batches to `output`.
    pub fn new(output: impl io::Write + Send + 'static) -> io::Result<(BatchWriter, FlushGuard)> {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || write_batches(&shared, output)
            })?;
        Ok((
            BatchWriter {
                shared: Arc::clone(&shared),
            },
            FlushGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }
}

/// The writer thread: waits for a first line, lets a batch gather for up to [`FLUSH_INTERVAL`],
/// writes it whole, and repeats until closed and empty.
fn write_batches(shared: &Shared, mut output: impl io::Write) {
    let mut batch = Vec::new();
    loop {
        let mut queue = shared.lock();
        while queue.bytes.is_empty() && !queue.closed {
            queue.writer_idle = true;
            queue = shared
                .lines_queued
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if queue.bytes.len() < EAGER_BYTES && !queue.closed {
            queue = shared
                .lines_queued
                .wait_timeout(queue, FLUSH_INTERVAL)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        std::mem::swap(&mut queue.bytes, &mut batch);
        let done = queue.closed && batch.is_empty();
        let wake_producers = std::mem::take(&mut queue.producer_waiting);
        drop(queue);
        if wake_producers {
            shared.room_made.notify_all();
        }
        if done {
            return;
        }
        // Nowhere to report a failed write of the log: the line is lost, as a direct write's would be.
        let _ = output.write_all(&batch).and_then(|()| output.flush());
        batch.clear();
        // A burst may have grown the batch far beyond a normal one; give that memory back.
        batch.shrink_to(4 * EAGER_BYTES);
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        let mut queue = self.shared.lock();
        queue.closed = true;
        drop(queue);
        self.shared.lines_queued.notify_one();
        self.shared.room_made.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One event's handle on the queue.
#[derive(Debug)]
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl io::Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut queue = self.shared.lock();
        while queue.bytes.len() >= QUEUE_LIMIT && !queue.closed {
            queue.producer_waiting = true;
            queue = self
                .shared
                .room_made
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if queue.closed {
            // The writer thread has stopped (the process is exiting): nothing would write this.
            return Ok(bytes.len());
        }
        let before = queue.bytes.len();
        queue.bytes.extend_from_slice(bytes);
        // Wake the writer for the first line of a batch, and early for a large batch; otherwise
        // it is asleep for at most the interval and finds these lines then.
        let wake = std::mem::take(&mut queue.writer_idle)
            || (before < EAGER_BYTES && queue.bytes.len() >= EAGER_BYTES);
        drop(queue);
        if wake {
            self.shared.lines_queued.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::sync::mpsc;

    use proptest::prelude::*;
    use tracing::{debug, error, info, warn};

    /// A `MakeWriter` that appends to a shared buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        /// The captured lines without their timestamps (the first word).
        fn lines(&self) -> Vec<String> {
            let text = String::from_utf8(self.0.lock().expect("buffer").clone()).expect("utf-8");
            text.lines()
                .map(|line| line.split_once(' ').expect("timestamp").1.to_owned())
                .collect()
        }
    }

    /// Logs through the default text format and through [`TextFormat`], and asserts both wrote
    /// the same lines apart from their timestamps.
    fn check(log: impl Fn()) {
        let default = Captured::default();
        let lean = Captured::default();
        let writing_to = |captured: &Captured| {
            let captured = captured.clone();
            tracing_subscriber::fmt()
                .with_max_level(Level::TRACE)
                .with_ansi(false)
                .with_writer(move || captured.clone())
        };
        tracing::subscriber::with_default(writing_to(&default).finish(), &log);
        let subscriber = writing_to(&lean).event_format(TextFormat::default());
        tracing::subscriber::with_default(subscriber.finish(), &log);
        let expected = default.lines();
        assert!(!expected.is_empty());
        assert_eq!(lean.lines(), expected);
    }

    #[derive(Debug)]
    struct Failure {
        text: &'static str,
        source: Option<Box<Failure>>,
    }

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.text)
        }
    }

    impl std::error::Error for Failure {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.source
                .as_deref()
                .map(|source| source as &(dyn std::error::Error + 'static))
        }
    }

    #[test]
    fn lean_text_lines_match_the_default_format() {
        check(|| {
            info!(
                request_id = %"0123456789abcdef",
                endpoint = %"bench",
                route = "/pages/{title}",
                method = "GET",
                tool = Option::<&str>::None,
                status = 403u16,
                duration_ms = 0.081,
                upstream_calls = 0u32,
                message = "request"
            );
        });
        check(|| warn!("escape \x1b[31m, bell \x07, C1 \u{85}, DEL \x7f and \"quotes\""));
        check(|| {
            let failure = Failure {
                text: "outer \x1b]0;title\x07",
                source: Some(Box::new(Failure {
                    text: "inner",
                    source: Some(Box::new(Failure {
                        text: "root \u{9b}",
                        source: None,
                    })),
                })),
            };
            error!(
                error = &failure as &(dyn std::error::Error + 'static),
                "failed"
            );
            error!(message = &failure as &(dyn std::error::Error + 'static));
            let alone = Failure {
                text: "alone",
                source: None,
            };
            error!(error = &alone as &(dyn std::error::Error + 'static));
        });
        check(|| {
            debug!(
                r#type = "kind",
                flag = true,
                negative = -5i64,
                huge = u128::MAX,
                tiny = 1e-7,
                large = 1e16,
                edge_low = 1e-4,
                edge_high = 999_999_999_999_999.9,
                not_a_number = f64::NAN,
                infinite = f64::INFINITY,
                negative_zero = -0.0,
                tab = "tab\there",
                unicode = "h\u{e9}llo \u{2603}",
                quoted = "a\"b\\c",
                empty = "",
                list = ?[1, 2],
                "done"
            );
        });
        check(|| {
            info!(message = 42u64);
            info!(message = true);
            info!(message = 0.5);
            info!(message = "text \x1b");
            info!(count = 1);
            tracing::trace!("");
        });
    }

    proptest! {
        #[test]
        fn timestamps_are_written_as_the_default_format_writes_them(
            seconds in 0u64..YEAR_10000,
            nanos in 0u32..1_000_000_000,
        ) {
            let since_epoch = Duration::new(seconds, nanos);
            let mut line = String::new();
            // Twice: the second comes from the cached second.
            push_timestamp(&mut line, since_epoch);
            push_timestamp(&mut line, since_epoch);
            let expected = humantime::format_rfc3339_micros(UNIX_EPOCH + since_epoch).to_string();
            prop_assert_eq!(line, format!("{expected}{expected}"));
        }

        #[test]
        fn lean_text_lines_match_the_default_format_for_any_value(
            text in any::<String>(),
            number in any::<f64>(),
            millis in 0u64..10_000_000_000,
        ) {
            check(|| {
                info!(text = text.as_str(), number, duration_ms = millis as f64 / 1000.0, "{text}");
            });
        }
    }

    proptest! {
        #[test]
        fn whole_thousandths_are_written_as_debug_writes_them(thousandths in 0u64..1_000_000_000_000) {
            let value = thousandths as f64 / 1000.0;
            prop_assert_eq!(whole_thousandths(value), Some(thousandths));
            let mut text = String::new();
            push_thousandths(&mut text, thousandths);
            prop_assert_eq!(text, format!("{value:?}"));
        }

        #[test]
        fn other_numbers_are_not_taken_for_thousandths(value in any::<f64>()) {
            if let Some(thousandths) = whole_thousandths(value) {
                let mut text = String::new();
                push_thousandths(&mut text, thousandths);
                prop_assert_eq!(text, format!("{value:?}"));
            }
        }
    }

    /// An output that sends each batch it is given to the test.
    struct Batches(mpsc::Sender<Vec<u8>>);

    impl io::Write for Batches {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _ = self.0.send(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_lone_line_is_written_without_waiting_for_more() {
        let (sender, batches) = mpsc::channel();
        let (writer, _guard) = BatchWriter::new(Batches(sender)).expect("writer thread");
        writer.make_writer().write_all(b"first\n").expect("queued");
        let batch = batches
            .recv_timeout(Duration::from_secs(10))
            .expect("the line is written on its own");
        assert_eq!(batch, b"first\n");
    }

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_is_dropped() {
        let (sender, batches) = mpsc::channel();
        let (writer, guard) = BatchWriter::new(Batches(sender)).expect("writer thread");
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for line in 0..20_000 {
                        let text = format!("{thread} {line}\n");
                        writer
                            .make_writer()
                            .write_all(text.as_bytes())
                            .expect("queued");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("logging thread");
        }
        drop(guard);
        let written: Vec<u8> = batches.try_iter().flatten().collect();
        let text = String::from_utf8(written).expect("whole lines");
        let mut next = [0; 4];
        for line in text.lines() {
            let (thread, number) = line.split_once(' ').expect("a whole line");
            let thread: usize = thread.parse().expect("thread");
            assert_eq!(number.parse::<usize>().expect("line"), next[thread]);
            next[thread] += 1;
        }
        assert_eq!(next, [20_000; 4]);
    }
}
