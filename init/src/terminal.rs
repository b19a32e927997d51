//! Handing the controlling terminal's foreground to the child, as a shell
//! does for a job, so that an interactive program run under init works.

use crate::sys;

/// True when stdin is a terminal whose foreground group is ours: then the
/// child should take it over. A background init leaves the terminal alone.
pub fn child_should_take() -> bool {
    sys::terminal_foreground() == Some(sys::process_group())
}

/// After a stop and `fg`, the shell gives the terminal back to our group;
/// pass it on to the child's group.
pub fn hand_over_if_ours(child_group: i32) {
    if child_should_take() {
        if let Err(e) = sys::set_terminal_foreground(child_group) {
            debug!("giving the terminal to {child_group}: {e}");
        }
    }
}
