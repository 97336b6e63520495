//! Build steps that run before the crate compiles. Each lives in its own file under `build/`.

#[path = "build/ui.rs"]
mod ui;

fn main() {
    ui::prepare_frontend();
}
