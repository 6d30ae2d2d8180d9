//! What a dialled number does. Each service is a function over an
//! answered (or about to be answered) `InboundCall`.

pub mod test_number;
