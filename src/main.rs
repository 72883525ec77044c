//! The `oci2ext4` command.

fn main() {
    println!("oci2ext4");
}
