using RaftKv.Contracts;

namespace RaftKv.Hosting.Tests;

public sealed class AuthOptionsTests
{
    [Fact]
    public void Tokens_given_in_the_settings_are_read_like_a_tokens_file_and_a_bad_line_is_named()
    {
        var token = TokenFormat.NewToken();
        var options = new AuthOptions { Tokens = TokenFormat.Line("ci", "write", token) + ";" };

        options.Validate().Should().BeEmpty();
        var store = TokenStore.Load(options);
        store.Find(token).Should().Be(("ci", RaftRole.Write));
        store.Find(token + "x").Should().BeNull("a token that is not listed is not found, however close");
        new AuthOptions { Tokens = "ci superuser sha256:00" }.Validate().Should().ContainSingle().Which.Should().StartWith("Tokens line 1:");
        new AuthOptions().Validate().Should().BeEmpty("no tokens: nothing is checked");
    }
}
