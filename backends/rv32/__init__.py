"""Running RV32 code: build with zig, execute on unicorn, count instructions exactly."""
