"""The console's screens besides the main one: details of a version or report, and modals."""
