//! Sets the linker flags a Node addon needs on each platform (e.g. lazy symbol lookup on macOS).
fn main() {
    napi_build::setup();
}
