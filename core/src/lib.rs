//! The Wrenn control plane as a library (filled by the foundation issue).
