//! One module per DNS host.
