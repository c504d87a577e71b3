//! Server-Sent Events, parsed by hand from a byte stream (the format is a few line rules;
//! see the WHATWG "server-sent events" section): `field: value` lines, a blank line ends an
//! event, `data` lines join with `\n`, lines starting with `:` are comments.
//!
//! Lines end with `\n` or `\r\n` (a lone `\r`, which no server we talk to sends, is not
//! treated as a line end).

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `message` when the event named none.
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Feeds on chunks as they arrive, in any split, and hands out complete events.
#[derive(Debug, Default)]
pub struct Parser {
    buffer: Vec<u8>,
    event: String,
    id: Option<String>,
    data: Vec<String>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The events completed by `chunk`.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.buffer[start..].iter().position(|&b| b == b'\n') {
            let end = start + offset;
            let mut line = &self.buffer[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        self.buffer.drain(..start);
        events
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => self.data.push(value.to_string()),
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {} // retry and unknown fields
        }
        None
    }

    fn dispatch(&mut self) -> Option<Event> {
        let event = std::mem::take(&mut self.event);
        if self.data.is_empty() {
            return None;
        }
        let data = std::mem::take(&mut self.data).join("\n");
        Some(Event {
            event: if event.is_empty() {
                "message".into()
            } else {
                event
            },
            id: self.id.clone(),
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_across_chunk_boundaries() {
        let mut p = Parser::new();
        let text = b": hello\n\nevent: log\nid: 1\ndata: {\"seq\":1}\n\nevent: end\r\ndata: a\r\ndata:b\r\n\r\ndata: plain\n\n";
        let mut events = Vec::new();
        for chunk in text.chunks(3) {
            events.extend(p.feed(chunk));
        }
        assert_eq!(
            events,
            vec![
                Event {
                    event: "log".into(),
                    id: Some("1".into()),
                    data: "{\"seq\":1}".into()
                },
                Event {
                    event: "end".into(),
                    id: Some("1".into()),
                    data: "a\nb".into()
                },
                Event {
                    event: "message".into(),
                    id: Some("1".into()),
                    data: "plain".into()
                },
            ]
        );
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        let mut p = Parser::new();
        assert!(p.feed(b"event: status\n\n").is_empty());
        // ...and its name does not leak into the next one.
        assert_eq!(p.feed(b"data: x\n\n")[0].event, "message");
    }

    #[test]
    fn multibyte_text_split_mid_character() {
        let mut p = Parser::new();
        let text = "data: caf\u{e9}\n\n".as_bytes();
        let (a, b) = text.split_at(9); // inside the two-byte é
        assert!(p.feed(a).is_empty());
        assert_eq!(p.feed(b)[0].data, "caf\u{e9}");
    }
}
