//! Placeholder: the DevtoolsConnection crate lands with issue 5.
