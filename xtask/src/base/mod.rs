//! The bottom layer: what every other layer needs and that needs nothing of
//! theirs: the exit kinds errors carry, the clock, sizes for people, and the events the layers
//! above report to the person at the terminal.
pub mod clock;
pub mod events;
pub mod exit;
pub mod shell_words;
pub mod units;
