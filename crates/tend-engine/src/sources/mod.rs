//! The engine's sources: tasks beside the engine loop that watch the outside world and carry out the
//! fleet's actions — the supervisor (spawned workers and adopted processes), the docker source, scraping
//! of workers' `/metrics` pages and discovery of attach pools' processes. Each reports what it sees
//! through the mailbox (`crate::mailbox`) and knows nothing of the engine loop; none decides anything.

pub(crate) mod discovery;
pub(crate) mod docker;
pub(crate) mod scrape;
pub(crate) mod supervisor;
